// Growable writer for the BGP codec (RFC 4271 field layouts): fork() reserves a length field,
// join() fills it once the body is written, so encoders never compute sizes twice.

export interface Fork {
  readonly at: number;
  readonly width: 1 | 2;
}

export class Writer {
  pos = 0;
  private buf: Uint8Array;
  private view: DataView;

  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Reserve a length field of `width` octets; join() fills it with the size written after it. */
  fork(width: 1 | 2): Fork {
    const at = this.pos;
    this.ensure(width);
    this.pos += width;
    return { at, width };
  }

  /** Fill a forked length field. Throws RangeError when the body does not fit the field. */
  join(f: Fork): this {
    const len = this.pos - f.at - f.width;
    if (f.width === 1) {
      if (len > 0xff) throw new RangeError(`length ${len} does not fit one octet`);
      this.buf[f.at] = len;
    } else {
      if (len > 0xffff) throw new RangeError(`length ${len} does not fit two octets`);
      this.view.setUint16(f.at, len);
    }
    return this;
  }

  /** Overwrite a 16-bit field already written (the message header length). */
  patchU16(at: number, v: number): this {
    this.view.setUint16(at, v);
    return this;
  }

  /** Overwrite one octet already written. */
  patchU8(at: number, v: number): this {
    this.buf[at] = v;
    return this;
  }

  /** Remove n octets at `at` (shifting what follows): turns a reserved wide length field narrow. */
  remove(at: number, n: number): this {
    this.buf.copyWithin(at, at + n, this.pos);
    this.pos -= n;
    return this;
  }

  /** A copy of what was written, sized exactly. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

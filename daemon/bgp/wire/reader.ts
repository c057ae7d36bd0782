// Bounds-checked reader over a Uint8Array for the BGP codec (RFC 4271 field layouts).
// Every read is checked; a short read throws ShortRead, which the message decoders catch at their
// boundary and turn into the BgpError the RFC prescribes for that field. Nothing escapes the codec.

/** Thrown by Reader when a read would pass the end of its region. Internal to the codec. */
export class ShortRead extends Error {
  constructor(
    readonly wanted: number,
    readonly available: number,
  ) {
    super(`short read: wanted ${wanted} octets, ${available} left`);
  }
}

export class Reader {
  /** Absolute offset of the next read in `buf`. */
  pos: number;
  readonly end: number;
  readonly buf: Uint8Array;
  private readonly view: DataView;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    // byteOffset/byteLength: a Buffer from a socket is a view into a larger pool.
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (n > this.end - this.pos) throw new ShortRead(n, this.end - this.pos);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A view (no copy) of the next n octets. Copy it before keeping it beyond the frame. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A reader confined to the next n octets (a length-prefixed region); this one moves past it. */
  sub(n: number): Reader {
    this.need(n);
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
}

// Reads struct layouts and data-section variables out of BPF Type Format (kernel BTF, see
// Documentation/bpf/btf.rst) through libbpf: used to check the TypeScript map codecs against the
// objects clang built, and to find the .rodata offsets of `const volatile` load-time knobs.
import {
  type Btf,
  btfFindByNameKind,
  btfNameByOffset,
  btfResolveSize,
  btfTypeRaw,
} from './libbpf.js';

export const BTF_KIND_INT = 1;
export const BTF_KIND_PTR = 2;
export const BTF_KIND_ARRAY = 3;
export const BTF_KIND_STRUCT = 4;
export const BTF_KIND_UNION = 5;
export const BTF_KIND_TYPEDEF = 8;
export const BTF_KIND_VOLATILE = 9;
export const BTF_KIND_CONST = 10;
export const BTF_KIND_VAR = 14;
export const BTF_KIND_DATASEC = 15;

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout {
  name: string;
  size: number;
  fields: Record<string, FieldLayout>;
}

export interface BtfTypeHead {
  name: string;
  kind: number;
  vlen: number;
  kflag: boolean;
  /** size for STRUCT/UNION/INT/DATASEC, referenced type id for PTR/TYPEDEF/CONST/VAR/... */
  sizeOrType: number;
}

function head(raw: Buffer, btf: Btf): BtfTypeHead {
  const info = raw.readUInt32LE(4);
  return {
    name: btfNameByOffset(btf, raw.readUInt32LE(0)),
    kind: (info >>> 24) & 0x1f,
    vlen: info & 0xffff,
    kflag: (info >>> 31) === 1,
    sizeOrType: raw.readUInt32LE(8),
  };
}

/** The type head of a BTF id (no trailer). */
export function btfType(btf: Btf, id: number): BtfTypeHead {
  return head(btfTypeRaw(btf, id, 0).subarray(0, 12), btf);
}

/** Follows typedef/const/volatile to the underlying type id. */
export function btfSkipModifiers(btf: Btf, id: number): number {
  for (let i = 0; i < 32; i++) {
    const t = btfType(btf, id);
    if (t.kind !== BTF_KIND_TYPEDEF && t.kind !== BTF_KIND_CONST && t.kind !== BTF_KIND_VOLATILE) return id;
    id = t.sizeOrType;
  }
  throw new Error(`BTF type ${id}: modifier chain too long`);
}

/**
 * Byte layout of a named struct. Bitfields are refused: nrd_shared.h has none, and a codec
 * cannot express one with byte offsets.
 */
export function btfStructLayout(btf: Btf, name: string): StructLayout {
  const id = btfFindByNameKind(btf, name, BTF_KIND_STRUCT);
  const raw = btfTypeRaw(btf, id, 12);
  const h = head(raw, btf);
  const fields: Record<string, FieldLayout> = {};
  for (let i = 0; i < h.vlen; i++) {
    const rec = 12 + i * 12;
    const fname = btfNameByOffset(btf, raw.readUInt32LE(rec));
    const ftype = raw.readUInt32LE(rec + 4);
    const off = raw.readUInt32LE(rec + 8);
    const bitOffset = h.kflag ? off & 0xffffff : off;
    const bitSize = h.kflag ? off >>> 24 : 0;
    if (bitSize !== 0 || bitOffset % 8 !== 0) throw new Error(`struct ${name}.${fname}: bitfield`);
    fields[fname] = { offset: bitOffset / 8, size: btfResolveSize(btf, ftype) };
  }
  return { name, size: h.sizeOrType, fields };
}

export interface DatasecVar {
  name: string;
  offset: number;
  size: number;
}

/**
 * Variables of a data section ('.rodata', '.data', '.bss'). Offsets are only meaningful in the BTF
 * of an opened bpf_object: libbpf fills them in from the ELF symbols at open.
 */
export function btfDatasecVars(btf: Btf, section: string): DatasecVar[] {
  const id = btfFindByNameKind(btf, section, BTF_KIND_DATASEC);
  const raw = btfTypeRaw(btf, id, 12);
  const h = head(raw, btf);
  const out: DatasecVar[] = [];
  for (let i = 0; i < h.vlen; i++) {
    const rec = 12 + i * 12;
    const varId = raw.readUInt32LE(rec);
    out.push({ name: btfType(btf, varId).name, offset: raw.readUInt32LE(rec + 4), size: raw.readUInt32LE(rec + 8) });
  }
  return out;
}

/** Name of a type after skipping modifiers ('nrd_if_key', '__u32' resolves to 'unsigned int'). */
export function btfTypeName(btf: Btf, id: number): string {
  return btfType(btf, btfSkipModifiers(btf, id)).name;
}

// A small strict CBOR reader: just what the attestation document, COSE_Sign1 and user_data
// need. Every length is checked against the remaining input before anything is sliced (a
// huge length claim cannot make us allocate), and nesting is bounded.

export class CborError extends Error {}

export type Item =
  | { t: "uint"; v: bigint }
  | { t: "nint"; v: bigint }
  | { t: "bytes"; v: Uint8Array }
  | { t: "text"; v: string }
  | { t: "array"; v: Item[]; definite: boolean }
  | { t: "map"; v: [Item, Item][]; definite: boolean }
  | { t: "tag"; tag: bigint; v: Item }
  | { t: "simple"; v: number }
  | { t: "float"; v: number };

const MAX_DEPTH = 16;

export class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}

  atEnd(): boolean {
    return this.pos >= this.b.length;
  }

  private byte(): number {
    if (this.pos >= this.b.length) throw new CborError("unexpected end of input");
    return this.b[this.pos++]!;
  }

  private arg(info: number): bigint {
    if (info < 24) return BigInt(info);
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (n === 0) throw new CborError(`reserved additional info ${info}`);
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(this.byte());
    return v;
  }

  private take(len: bigint): Uint8Array {
    if (len > BigInt(this.b.length - this.pos)) throw new CborError("length beyond the input");
    const n = Number(len);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** The next data item. Indefinite-length strings are refused (no real document uses them). */
  item(depth = 0): Item {
    if (depth > MAX_DEPTH) throw new CborError("nested too deeply");
    const ib = this.byte();
    const major = ib >> 5;
    const info = ib & 31;
    if (info === 31) {
      if (major === 4 || major === 5) {
        const items: Item[] = [];
        const pairs: [Item, Item][] = [];
        for (;;) {
          if (this.pos >= this.b.length) throw new CborError("unterminated indefinite item");
          if (this.b[this.pos] === 0xff) {
            this.pos++;
            break;
          }
          if (major === 4) items.push(this.item(depth + 1));
          else pairs.push([this.item(depth + 1), this.item(depth + 1)]);
        }
        return major === 4 ? { t: "array", v: items, definite: false } : { t: "map", v: pairs, definite: false };
      }
      throw new CborError(`indefinite length for major type ${major}`);
    }
    const a = this.arg(info);
    switch (major) {
      case 0:
        return { t: "uint", v: a };
      case 1:
        return { t: "nint", v: -1n - a };
      case 2:
        return { t: "bytes", v: this.take(a) };
      case 3:
        try {
          return { t: "text", v: new TextDecoder("utf-8", { fatal: true }).decode(this.take(a)) };
        } catch (e) {
          if (e instanceof CborError) throw e;
          throw new CborError("text is not UTF-8");
        }
      case 4: {
        // Each item takes at least one byte: a count beyond the input is a lie.
        if (a > BigInt(this.b.length - this.pos)) throw new CborError("array count beyond the input");
        const v: Item[] = [];
        for (let i = 0n; i < a; i++) v.push(this.item(depth + 1));
        return { t: "array", v, definite: true };
      }
      case 5: {
        if (a * 2n > BigInt(this.b.length - this.pos)) throw new CborError("map count beyond the input");
        const v: [Item, Item][] = [];
        for (let i = 0n; i < a; i++) v.push([this.item(depth + 1), this.item(depth + 1)]);
        return { t: "map", v, definite: true };
      }
      case 6:
        return { t: "tag", tag: a, v: this.item(depth + 1) };
      default:
        if (info === 25 || info === 26 || info === 27) return { t: "float", v: NaN };
        return { t: "simple", v: Number(a) };
    }
  }
}

/** Exactly one item, nothing after it (trailing bytes could hide data from a verifier). */
export function decodeOne(b: Uint8Array, what: string): Item {
  const r = new Reader(b);
  let it: Item;
  try {
    it = r.item();
  } catch (e) {
    throw new CborError(`${what}: ${(e as Error).message}`);
  }
  if (!r.atEnd()) throw new CborError(`${what}: ${b.length - r.pos} trailing bytes`);
  return it;
}

export const isNull = (i: Item): boolean => i.t === "simple" && i.v === 22;

// ----- writing (definite lengths, shortest heads: deterministic) -----

export function head(major: number, n: number | bigint): Uint8Array {
  const v = BigInt(n);
  const m = major << 5;
  if (v < 24n) return Uint8Array.of(m | Number(v));
  if (v < 256n) return Uint8Array.of(m | 24, Number(v));
  if (v < 65536n) return Uint8Array.of(m | 25, Number(v >> 8n), Number(v & 255n));
  if (v < 1n << 32n) {
    const o = new Uint8Array(5);
    o[0] = m | 26;
    new DataView(o.buffer).setUint32(1, Number(v));
    return o;
  }
  const o = new Uint8Array(9);
  o[0] = m | 27;
  new DataView(o.buffer).setBigUint64(1, v);
  return o;
}

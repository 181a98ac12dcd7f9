// FROST threshold signing across enclaves (`/v1/frost/...`): the wire types of
// protocol/src/frost.rs and protocol/src/peers.rs, the digests the group owner signs, and a
// coordinator (client/src/frost.rs) that carries the sealed messages between the members and
// checks what they answer. The coordinator is untrusted by the enclaves: it sees no share, and
// a message it changes, replays or redirects is refused by its recipient. What it returns is
// checked here first: the members agree on the group, the group's nodes are the ones their
// verified attestations name, and every signature verifies (BIP-340, @noble/curves) under the
// Taproot output key computed here.

import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { b64, concat, hex, randomBytes, u16be, u64be, unhex, utf8 } from "./bytes.js";
import { SigilError } from "./errors.js";
import { taggedDigest, type OwnerKey } from "./owner.js";
import type { SigilClient } from "./client.js";

/** The peer-message protocol of key generation (and refresh). */
export const FROST_DKG = "frost-dkg";
/** The peer-message protocol of share repair. */
export const FROST_REPAIR = "frost-repair";
/** Most members of a group taken through the API. */
export const MAX_MEMBERS = 16;
/** Most messages signed in one session. */
export const MAX_BATCH = 16;

export const DKG_TAG = "sigil/frost-dkg/v1";
export const SIGN_TAG = "sigil/frost-sign/v1";
export const REFRESH_TAG = "sigil/frost-refresh/v1";
export const COMMIT_TAG = "sigil/frost-refresh-commit/v1";
export const REPAIR_TAG = "sigil/frost-repair/v1";

// ---- Wire types (JSON as the enclave reads and writes it; hex lowercase, base64 padded) ----

/** A message from one enclave to another, sealed to the recipient's attested per-boot key
 * (HPKE auth mode with the sender's). Carried as opaque JSON. */
export interface PeerMessage {
  v: number;
  protocol: string;
  session: string;
  round: number;
  sender: string;
  recipient: string;
  seq: number;
  enc: string;
  ct: string;
}

/** `POST /v1/frost/dkg/start`. */
export interface DkgStart {
  session: string;
  threshold: number;
  /** The members' attestation documents (base64), in participant order. */
  members: string[];
  owner: string;
  not_after: number;
  signature: string;
}

/** `POST /v1/frost/dkg/round2`, `/dkg/finish` and `/repair/forward`. */
export interface DkgContinue {
  session: string;
  messages: PeerMessage[];
}

export interface DkgMessages {
  messages: PeerMessage[];
}

export interface GroupRequest {
  group: string;
}

/** A group as one member holds it. Every member's view is the same but for `participant`. */
export interface GroupView {
  /** The group's id: the x coordinate of its verifying key. */
  group: string;
  /** The group's verifying key (the Taproot internal key), compressed. */
  verifying_key: string;
  /** The BIP-86 output key (key path, no script tree). */
  output_key: string;
  threshold: number;
  /** The members' node identities, in participant order. */
  members: string[];
  verifying_shares: string[];
  owner: string;
  participant: number;
  /** SHA-256 of the group's public key package (changes with each committed refresh). */
  generation: string;
  /** A refresh this member finished that waits for the owner's commit: its generation. */
  pending?: string;
}

/** `POST /v1/frost/sign/commit`. */
export interface SignCommit {
  session: string;
  group: string;
  signers: number[];
  messages: string[];
  merkle_root?: string;
  not_after: number;
  signature: string;
}

/** One signer's commitments (or shares), one per message (base64). */
export interface SignerItems {
  participant: number;
  items: string[];
}

/** `POST /v1/frost/sign/share`. */
export interface SignShare {
  session: string;
  commitments: SignerItems[];
}

/** `POST /v1/frost/sign/aggregate`. */
export interface SignAggregate {
  group: string;
  messages: string[];
  merkle_root?: string;
  commitments: SignerItems[];
  shares: SignerItems[];
}

export interface Signatures {
  output_key: string;
  signatures: string[];
}

/** `POST /v1/frost/refresh/start`. */
export interface RefreshStart {
  session: string;
  group: string;
  generation: string;
  members: string[];
  not_after: number;
  signature: string;
}

/** `POST /v1/frost/refresh/commit`. */
export interface RefreshCommit {
  group: string;
  generation: string;
  not_after: number;
  signature: string;
}

/** `POST /v1/frost/repair/start`. */
export interface RepairStart {
  session: string;
  group: string;
  lost: number;
  helpers: number[];
  helper_documents: string[];
  new_member: string;
  not_after: number;
  signature: string;
}

/** `POST /v1/frost/repair/finish`. */
export interface RepairFinish {
  session: string;
  group: string;
  lost: number;
  helpers: number[];
  helper_documents: string[];
  messages: PeerMessage[];
  owner: string;
  not_after: number;
  signature: string;
}

/** The typed `/v1/frost/...` calls of one enclave (`client.frost`): one step each, nothing
 * checked beyond the sealed answer. The coordinator functions below run and check the steps. */
export class FrostCalls {
  readonly #c: SigilClient;
  constructor(client: SigilClient) {
    this.#c = client;
  }
  dkgStart(r: DkgStart): Promise<DkgMessages> {
    return this.#c.call("POST /v1/frost/dkg/start", r);
  }
  dkgRound2(r: DkgContinue): Promise<DkgMessages> {
    return this.#c.call("POST /v1/frost/dkg/round2", r);
  }
  dkgFinish(r: DkgContinue): Promise<GroupView> {
    return this.#c.call("POST /v1/frost/dkg/finish", r);
  }
  group(group: string): Promise<GroupView> {
    return this.#c.call("POST /v1/frost/group", { group } satisfies GroupRequest);
  }
  signCommit(r: SignCommit): Promise<SignerItems> {
    return this.#c.call("POST /v1/frost/sign/commit", r);
  }
  signShare(r: SignShare): Promise<SignerItems> {
    return this.#c.call("POST /v1/frost/sign/share", r);
  }
  signAggregate(r: SignAggregate): Promise<Signatures> {
    return this.#c.call("POST /v1/frost/sign/aggregate", r);
  }
  refreshStart(r: RefreshStart): Promise<DkgMessages> {
    return this.#c.call("POST /v1/frost/refresh/start", r);
  }
  refreshCommit(r: RefreshCommit): Promise<GroupView> {
    return this.#c.call("POST /v1/frost/refresh/commit", r);
  }
  repairStart(r: RepairStart): Promise<DkgMessages> {
    return this.#c.call("POST /v1/frost/repair/start", r);
  }
  repairForward(r: DkgContinue): Promise<DkgMessages> {
    return this.#c.call("POST /v1/frost/repair/forward", r);
  }
  repairFinish(r: RepairFinish): Promise<GroupView> {
    return this.#c.call("POST /v1/frost/repair/finish", r);
  }
}

// ---- What the group owner signs (protocol/src/frost.rs) ----

/** The owner's approval of a key generation: session, threshold, the members' nodes in
 * participant order, the owner, the expiry. */
export function dkgDigest(session: Uint8Array, threshold: number, members: Uint8Array[], owner: Uint8Array, notAfter: number | bigint): Uint8Array {
  return taggedDigest(DKG_TAG, [session, u16be(threshold), concat(...members), owner, u64be(notAfter)]);
}

/** The owner's approval of a signing session: everything the signature covers and who makes
 * it. An absent script-tree root is an empty field (present: 32 bytes). */
export function signDigest(session: Uint8Array, group: Uint8Array, signers: number[], messages: Uint8Array[], merkleRoot: Uint8Array | undefined, notAfter: number | bigint): Uint8Array {
  return taggedDigest(SIGN_TAG, [session, group, concat(...signers.map(u16be)), concat(...messages), merkleRoot ?? new Uint8Array(), u64be(notAfter)]);
}

/** The owner's approval of a refresh of `generation`. */
export function refreshDigest(session: Uint8Array, group: Uint8Array, generation: Uint8Array, members: Uint8Array[], notAfter: number | bigint): Uint8Array {
  return taggedDigest(REFRESH_TAG, [session, group, generation, concat(...members), u64be(notAfter)]);
}

/** The owner's approval to put a refreshed generation into use. */
export function commitDigest(group: Uint8Array, generation: Uint8Array, notAfter: number | bigint): Uint8Array {
  return taggedDigest(COMMIT_TAG, [group, generation, u64be(notAfter)]);
}

/** The owner's approval of a repair of participant `lost` by `helpers` for `newNode`. */
export function repairDigest(session: Uint8Array, group: Uint8Array, lost: number, helpers: number[], newNode: Uint8Array, notAfter: number | bigint): Uint8Array {
  return taggedDigest(REPAIR_TAG, [session, group, u16be(lost), concat(...helpers.map(u16be)), newNode, u64be(notAfter)]);
}

// ---- Taproot ----

const N = secp256k1.Point.CURVE().n;
const bytesToBig = (b: Uint8Array): bigint => BigInt("0x" + (hex(b) || "0"));

/** BIP-341's output key of the x-only `internal` key: `lift_x(P) + t·G`, with
 * `t = hash_TapTweak(P || merkle_root)` (no root: key path only, BIP-86). Computed here,
 * independently of the enclaves' FROST library. */
export function taprootOutputKey(internal: Uint8Array, merkleRoot?: Uint8Array): Uint8Array {
  if (internal.length !== 32) throw new SigilError("protocol", "the group key is not 32 bytes");
  if (merkleRoot !== undefined && merkleRoot.length !== 32) throw new TypeError("a Taproot script tree root is 32 bytes");
  let p;
  try {
    p = schnorr.utils.lift_x(bytesToBig(internal));
  } catch {
    throw new SigilError("protocol", "the group key is not a valid x-only key");
  }
  const tag = sha256(utf8("TapTweak"));
  const t = bytesToBig(sha256(concat(tag, tag, internal, merkleRoot ?? new Uint8Array())));
  if (t === 0n || t >= N) throw new SigilError("protocol", "the Taproot tweak is out of range");
  return p.add(secp256k1.Point.BASE.multiply(t)).toBytes(true).subarray(1);
}

// ---- The coordinator ----

/** A group as the coordinator keeps it: every member's answer was checked to agree. */
export interface FrostGroup {
  /** The group's id (its x-only key, hex): the Taproot internal key. */
  id: string;
  /** The group's verifying key, compressed (hex). */
  verifyingKey: string;
  /** The BIP-86 output key (x-only hex) its key-path signatures verify under. */
  outputKey: string;
  threshold: number;
  owner: string;
  generation: string;
  participants: { participant: number; node: string; verifyingShare: string }[];
  /** The group as participant 1 described it. */
  view: GroupView;
}

export function groupOfView(v: GroupView): FrostGroup {
  return {
    id: v.group,
    verifyingKey: v.verifying_key,
    outputKey: v.output_key,
    threshold: v.threshold,
    owner: v.owner,
    generation: v.generation,
    participants: v.members.map((node, i) => ({ participant: i + 1, node, verifyingShare: v.verifying_shares[i]! })),
    view: { ...v, participant: 1 },
  };
}

const mismatch = (m: string) => new SigilError("protocol", m);

/** The client's node identity, from its verified attestation (never from what an API says). */
export function nodeOf(c: SigilClient): string {
  const n = c.attestation.userData?.node;
  if (!n) throw mismatch(`${c.base}: the enclave has no node identity (its sealed state is not open)`);
  return n;
}

const sameView = (a: GroupView, b: GroupView): boolean => {
  const norm = (v: GroupView) =>
    JSON.stringify([v.group, v.verifying_key, v.output_key, v.threshold, v.members, v.verifying_shares, v.owner, v.generation, v.pending ?? null]);
  return norm(a) === norm(b);
};

/** Every member's view agrees (but for its place), each at its own place, and the group is
 * the one asked for: these nodes in this order, this threshold and owner, a well-formed key
 * whose BIP-86 output key is the one stated (client/src/frost.rs `check_views`). */
export function checkViews(views: GroupView[], nodes: string[], threshold: number, owner: string): void {
  const first = views[0];
  if (!first) throw mismatch("no member answered");
  views.forEach((v, i) => {
    if (!sameView(v, first)) throw mismatch(`member ${i + 1} describes another group than member 1`);
    if (v.participant !== i + 1) throw mismatch(`member ${i + 1} says it is participant ${v.participant}`);
  });
  if (JSON.stringify(first.members) !== JSON.stringify(nodes) || first.threshold !== threshold || first.owner !== owner) {
    throw mismatch("the group's members, threshold or owner are not the ones asked for");
  }
  if (!/^0[23][0-9a-f]{64}$/.test(first.verifying_key) || first.verifying_key.slice(2) !== first.group || first.verifying_shares.length !== nodes.length) {
    throw mismatch("the group's key or verifying shares are malformed");
  }
  if (hex(taprootOutputKey(unhex(first.group, 32))) !== first.output_key) {
    throw mismatch("the group's output key is not the BIP-86 tweak of its key");
  }
}

/** The messages a member answered: for this session, from that member, to another member. */
function checkMessages(msgs: PeerMessage[] | undefined, session: string, sender: string, recipients: string[], who: string): PeerMessage[] {
  if (!Array.isArray(msgs)) throw mismatch(`${who} answered no message list`);
  for (const m of msgs) {
    if (m.session !== session || m.sender !== sender || m.recipient === sender || !recipients.includes(m.recipient)) {
      throw mismatch(`${who} answered a message for another session, sender or recipient`);
    }
  }
  return msgs;
}

const addressed = (all: PeerMessage[], node: string) => all.filter((m) => m.recipient === node);

function distinctNodes(clients: SigilClient[]): string[] {
  const nodes = clients.map(nodeOf);
  if (new Set(nodes).size !== nodes.length) throw new SigilError("invalid_request", "two clients are the same enclave (node)");
  return nodes;
}

/** Runs a key generation of `clients` (participant i is `clients[i-1]`) with `threshold`
 * signers needed, owned by `owner` (whose signature approves every signing session). Each
 * member is shown every member's attestation document as its client verified it (fetched with
 * a fresh nonce at connect: connect shortly before, the enclaves refuse old documents). Returns
 * the group once every member's answer agrees. */
export async function frostKeygen(clients: SigilClient[], opts: { threshold: number }, owner: OwnerKey): Promise<FrostGroup> {
  const n = clients.length;
  const { threshold } = opts;
  if (n < 2 || n > MAX_MEMBERS) throw new SigilError("invalid_request", `a group has 2 to ${MAX_MEMBERS} members, not ${n}`);
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > n) throw new SigilError("invalid_request", `the threshold must be 2..=${n}, not ${threshold}`);
  const nodes = distinctNodes(clients);
  const session = randomBytes(32);
  const sid = hex(session);
  const documents = clients.map((c) => b64(c.document));
  const notAfter = owner.notAfter();
  const digest = dkgDigest(session, threshold, nodes.map((x) => unhex(x, 32)), owner.xOnly, notAfter);
  const round1: PeerMessage[] = [];
  for (const [i, c] of clients.entries()) {
    const r = await c.frost.dkgStart({
      session: sid, threshold, members: documents, owner: hex(owner.xOnly), not_after: notAfter,
      signature: hex(owner.signFor(c.attestation.publicKey, digest)),
    });
    round1.push(...checkMessages(r.messages, sid, nodes[i]!, nodes, `member ${i + 1}`));
  }
  const views = await rounds2And3(clients, nodes, sid, round1);
  checkViews(views, nodes, threshold, hex(owner.xOnly));
  return groupOfView(views[0]!);
}

async function rounds2And3(clients: SigilClient[], nodes: string[], sid: string, round1: PeerMessage[]): Promise<GroupView[]> {
  const round2: PeerMessage[] = [];
  for (const [i, c] of clients.entries()) {
    const r = await c.frost.dkgRound2({ session: sid, messages: addressed(round1, nodes[i]!) });
    round2.push(...checkMessages(r.messages, sid, nodes[i]!, nodes, `member ${i + 1}`));
  }
  const views: GroupView[] = [];
  for (const [i, c] of clients.entries()) views.push(await c.frost.dkgFinish({ session: sid, messages: addressed(round2, nodes[i]!) }));
  return views;
}

/** Each client's participant number in `group`, by the node its verified attestation names;
 * increasing, no member twice, every client a member. */
export function participantsOf(group: FrostGroup, clients: SigilClient[]): { participant: number; client: SigilClient }[] {
  const out = clients.map((client) => {
    const node = nodeOf(client);
    const p = group.participants.find((x) => x.node === node);
    if (!p) throw new SigilError("not_a_member", `${client.base} (node ${node}) is not a member of group ${group.id}`);
    return { participant: p.participant, client };
  });
  out.sort((a, b) => a.participant - b.participant);
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.participant === out[i - 1]!.participant) throw new SigilError("invalid_request", `participant ${out[i]!.participant} is given twice`);
  }
  return out;
}

export interface SignOptions {
  /** The Taproot script tree's root (32 bytes); absent: key path only (BIP-86). */
  merkleRoot?: Uint8Array;
}

export interface FrostSignatures {
  /** The x-only key the signatures verify under (the group's output key, or its tweak by the
   * script tree when a root was given), computed here. */
  outputKey: Uint8Array;
  /** One BIP-340 signature per message, each verified here. */
  signatures: Uint8Array[];
  /** The participants who signed, increasing. */
  signers: number[];
}

/** Signs `messages` (1..=16, 32 bytes each, e.g. sighashes) with `group` by `signers` (at
 * least the threshold of its members, in any order: each one's participant number is found by
 * its attested node), the group's owner approving. Every signature is verified here under the
 * Taproot output key computed here before it is returned. */
export async function frostSign(group: FrostGroup, signers: SigilClient[], messages: Uint8Array[], owner: OwnerKey, opts: SignOptions = {}): Promise<FrostSignatures> {
  if (messages.length < 1 || messages.length > MAX_BATCH) throw new SigilError("invalid_request", `a session signs 1 to ${MAX_BATCH} messages, not ${messages.length}`);
  if (messages.some((m) => m.length !== 32)) throw new TypeError("each message is 32 bytes");
  const who = participantsOf(group, signers);
  if (who.length < group.threshold) throw new SigilError("below_threshold", `${who.length} signers; the group needs ${group.threshold}`);
  const numbers = who.map((w) => w.participant);
  const session = randomBytes(32);
  const sid = hex(session);
  const notAfter = owner.notAfter();
  const root = opts.merkleRoot;
  const digest = signDigest(session, unhex(group.id, 32), numbers, messages, root, notAfter);
  const msgs = messages.map(hex);
  const rootField = root ? { merkle_root: hex(root) } : {};
  const commitments: SignerItems[] = [];
  for (const { participant, client } of who) {
    const c = await client.frost.signCommit({ session: sid, group: group.id, signers: numbers, messages: msgs, ...rootField, not_after: notAfter, signature: hex(owner.signFor(client.attestation.publicKey, digest)) });
    if (c.participant !== participant) throw mismatch(`the enclave given as participant ${participant} is participant ${c.participant}`);
    if (c.items?.length !== messages.length) throw mismatch(`participant ${participant} answered ${c.items?.length} commitments for ${messages.length} messages`);
    commitments.push(c);
  }
  const shares: SignerItems[] = [];
  for (const { participant, client } of who) {
    const s = await client.frost.signShare({ session: sid, commitments });
    if (s.participant !== participant || s.items?.length !== messages.length) throw mismatch(`participant ${participant} answered shares of another participant or number`);
    shares.push(s);
  }
  const out = await who[0]!.client.frost.signAggregate({ group: group.id, messages: msgs, ...rootField, commitments, shares });
  return { ...checkSignatures(group, messages, root, out), signers: numbers };
}

/** The aggregator's answer, believed only if each signature verifies (BIP-340) under the
 * output key computed here from the group id and the script tree root. */
export function checkSignatures(group: Pick<FrostGroup, "id">, messages: Uint8Array[], merkleRoot: Uint8Array | undefined, out: Signatures): { outputKey: Uint8Array; signatures: Uint8Array[] } {
  const key = taprootOutputKey(unhex(group.id, 32), merkleRoot);
  if (out.output_key !== hex(key) || out.signatures?.length !== messages.length) {
    throw mismatch("the aggregator answered another output key or another number of signatures");
  }
  const signatures = out.signatures.map((s, i) => {
    let sig: Uint8Array;
    try {
      sig = unhex(s, 64);
    } catch {
      throw mismatch(`signature ${i + 1} is malformed`);
    }
    let ok = false;
    try {
      ok = schnorr.verify(sig, messages[i]!, key);
    } catch {
      ok = false;
    }
    if (!ok) throw mismatch(`signature ${i + 1} does not verify`);
    return sig;
  });
  return { outputKey: key, signatures };
}

/** The group `id` as each of `clients` holds it, checked to agree (but for each one's place)
 * and each at the place its attested node holds; with each client's participant number,
 * increasing (the Rust CLI's `members_of`). */
export async function frostMembers(clients: SigilClient[], id: string): Promise<{ group: FrostGroup; members: { participant: number; client: SigilClient }[]; views: GroupView[] }> {
  if (clients.length === 0) throw new SigilError("invalid_request", "no member given");
  const views: GroupView[] = [];
  for (const c of clients) {
    const v = await c.frost.group(id);
    if (v.group !== id) throw mismatch(`${c.base} answered for another group`);
    if (views[0] && !sameView(v, views[0])) throw mismatch("the members describe the group differently");
    if (v.members[v.participant - 1] !== nodeOf(c)) throw mismatch(`${c.base} says it is participant ${v.participant}, which its attested node is not`);
    views.push(v);
  }
  const group = groupOfView(views[0]!);
  if (hex(taprootOutputKey(unhex(group.id, 32))) !== group.outputKey) throw mismatch("the group's output key is not the BIP-86 tweak of its key");
  return { group, members: participantsOf(group, clients), views };
}

/** Refreshes every share of the group `id` (`clients`: every member, any order): new shares
 * for the same group key, kept pending at each member, then the owner's commit at every
 * member. Old shares stop combining with new ones. Returns the group at its new generation. */
export async function frostRefresh(clients: SigilClient[], id: string, owner: OwnerKey): Promise<FrostGroup> {
  const { group, members } = await frostMembers(clients, id);
  if (members.length !== group.participants.length) throw new SigilError("invalid_request", "a refresh takes every member");
  const ordered = members.map((m) => m.client);
  const nodes = ordered.map(nodeOf);
  const session = randomBytes(32);
  const sid = hex(session);
  const documents = ordered.map((c) => b64(c.document));
  const notAfter = owner.notAfter();
  const digest = refreshDigest(session, unhex(group.id, 32), unhex(group.generation, 32), nodes.map((x) => unhex(x, 32)), notAfter);
  const round1: PeerMessage[] = [];
  for (const [i, c] of ordered.entries()) {
    const r = await c.frost.refreshStart({
      session: sid, group: group.id, generation: group.generation, members: documents, not_after: notAfter,
      signature: hex(owner.signFor(c.attestation.publicKey, digest)),
    });
    round1.push(...checkMessages(r.messages, sid, nodes[i]!, nodes, `member ${i + 1}`));
  }
  const finished = await rounds2And3(ordered, nodes, sid, round1);
  checkViews(finished, nodes, group.threshold, hex(owner.xOnly));
  const pending = finished[0]!.pending;
  if (!pending) throw mismatch("the members finished the refresh but hold nothing pending");
  if (finished[0]!.generation !== group.generation) throw mismatch("the members' shares moved during the refresh");
  const after = await frostCommit(ordered, id, pending, owner);
  if (after.verifyingKey !== group.verifyingKey || after.outputKey !== group.outputKey) throw mismatch("the refresh changed the group key");
  return after;
}

/** Puts the pending generation `generation` into use at every member (`clients`: every
 * member, any order); the last step of a refresh, harmless twice. Nothing is committed unless
 * every member holds or has pending that generation (members part way through a commit
 * differ in their generation and shares, so only the group's key, threshold, owner and
 * members are compared before it). */
export async function frostCommit(clients: SigilClient[], id: string, generation: string, owner: OwnerKey): Promise<FrostGroup> {
  unhex(generation, 32);
  const held: { participant: number; client: SigilClient; view: GroupView }[] = [];
  for (const client of clients) {
    const v = await client.frost.group(id);
    const f = held[0]?.view;
    if (v.group !== id || (f && JSON.stringify([v.verifying_key, v.output_key, v.threshold, v.members, v.owner]) !== JSON.stringify([f.verifying_key, f.output_key, f.threshold, f.members, f.owner]))) {
      throw mismatch("the members describe the group differently");
    }
    if (v.members[v.participant - 1] !== nodeOf(client)) throw mismatch(`${client.base} says it is participant ${v.participant}, which its attested node is not`);
    held.push({ participant: v.participant, client, view: v });
  }
  held.sort((a, b) => a.participant - b.participant);
  const first = held[0]?.view;
  if (!first || held.length !== first.members.length || held.some((h, i) => h.participant !== i + 1)) {
    throw new SigilError("invalid_request", "a commit takes every member, once each");
  }
  for (const { participant, view: v } of held) {
    if (v.generation !== generation && v.pending !== generation) {
      throw mismatch(`member ${participant} neither holds nor has pending generation ${generation}: nothing committed`);
    }
  }
  const ordered = held.map((h) => h.client);
  const nodes = ordered.map(nodeOf);
  const notAfter = owner.notAfter();
  const digest = commitDigest(unhex(id, 32), unhex(generation, 32), notAfter);
  const out: GroupView[] = [];
  for (const c of ordered) {
    out.push(await c.frost.refreshCommit({ group: id, generation, not_after: notAfter, signature: hex(owner.signFor(c.attestation.publicKey, digest)) }));
  }
  checkViews(out, nodes, first.threshold, hex(owner.xOnly));
  if (out[0]!.generation !== generation || out[0]!.pending !== undefined) throw mismatch("the members are not at the committed generation");
  return groupOfView(out[0]!);
}

/** Rebuilds participant `lost`'s share for `newMember` (an enclave whose state never held it)
 * with `helpers` (at least the threshold of the other members, any order), the owner
 * approving. The group key and every other share stay. Returns the group with the new
 * holder's node at place `lost`, checked against what the helpers hold. */
export async function frostRepair(helpers: SigilClient[], newMember: SigilClient, id: string, lost: number, owner: OwnerKey): Promise<FrostGroup> {
  const { group, members, views } = await frostMembers(helpers, id);
  if (!Number.isInteger(lost) || lost < 1 || lost > group.participants.length) throw new SigilError("invalid_request", `participant ${lost} is not in the group`);
  if (members.some((m) => m.participant === lost)) throw new SigilError("invalid_request", `participant ${lost} cannot help rebuild its own share`);
  if (members.length < group.threshold) throw new SigilError("below_threshold", `${members.length} helpers; the group needs ${group.threshold}`);
  const newNode = nodeOf(newMember);
  const numbers = members.map((m) => m.participant);
  const helperNodes = members.map((m) => nodeOf(m.client));
  if (helperNodes.includes(newNode)) throw new SigilError("invalid_request", "the new holder is one of the helpers");
  const session = randomBytes(32);
  const sid = hex(session);
  const documents = members.map((m) => b64(m.client.document));
  const notAfter = owner.notAfter();
  const digest = repairDigest(session, unhex(id, 32), lost, numbers, unhex(newNode, 32), notAfter);
  const round1: PeerMessage[] = [];
  for (const [i, { client }] of members.entries()) {
    const r = await client.frost.repairStart({
      session: sid, group: id, lost, helpers: numbers, helper_documents: documents, new_member: b64(newMember.document),
      not_after: notAfter, signature: hex(owner.signFor(client.attestation.publicKey, digest)),
    });
    round1.push(...checkMessages(r.messages, sid, helperNodes[i]!, [...helperNodes, newNode], `helper ${numbers[i]}`));
  }
  const round2: PeerMessage[] = [];
  for (const [i, { client }] of members.entries()) {
    const r = await client.frost.repairForward({ session: sid, messages: addressed(round1, helperNodes[i]!) });
    round2.push(...checkMessages(r.messages, sid, helperNodes[i]!, [...helperNodes, newNode], `helper ${numbers[i]}`));
  }
  const view = await newMember.frost.repairFinish({
    session: sid, group: id, lost, helpers: numbers, helper_documents: documents, messages: addressed(round2, newNode),
    owner: hex(owner.xOnly), not_after: notAfter, signature: hex(owner.signFor(newMember.attestation.publicKey, digest)),
  });
  const held = views[0]!;
  const expected: GroupView = { ...held, participant: lost, members: held.members.map((m, i) => (i === lost - 1 ? newNode : m)) };
  delete expected.pending; // nothing is pending at the new holder, whatever is at the helpers
  if (view.participant !== lost || !sameView(view, expected)) throw mismatch("the new holder describes another group than the one repaired");
  return groupOfView(view);
}

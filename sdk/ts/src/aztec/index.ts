// An Aztec private-kernel prover whose Chonk (client IVC) proofs are made by a sigil enclave.
//
// It is @aztec/bb-prover's BBLazyPrivateKernelProver (witness generation and simulation stay
// local, as Aztec does them) with createChonkProof sent to the enclave: the execution steps are
// serialized exactly as Aztec's native prover writes ivc-inputs.msgpack for the bb CLI
// (serializePrivateExecutionSteps), proven by the image's bb of the matching version, and bb's
// proof file is read back as Aztec reads the CLI's (32-byte fields with the public inputs in
// front). Only this entry point of the package imports @aztec; the core does not.

import { BBLazyPrivateKernelProver } from "@aztec/bb-prover/client/lazy";
import type { BBPrivateKernelProverOptions } from "@aztec/bb-prover/client";
import type { CircuitSimulator } from "@aztec/simulator/client";
import { serializePrivateExecutionSteps, type PrivateExecutionStep } from "@aztec/stdlib/kernel";
import { ChonkProofWithPublicInputs } from "@aztec/stdlib/proofs";

import type { VerifiedAttestation } from "../attestation/verify.js";
import type { ConnectOptions, ProveOptions, ProveRequest } from "../client.js";
import { SigilClient } from "../client.js";
import { AttestationError, ProveError, SigilError } from "../errors.js";
import type { JobStatus, ProveResult } from "../prove.js";

/** The bb version @aztec/bb-prover 4.1.2 (this package's peer) proves with. */
export const AZTEC_BB_VERSION = "4.1.2";

/** What the prover needs of a client: its verified attestation and a proving call. A
 * SigilClient is one. */
export interface ChonkProvingClient {
  readonly attestation: VerifiedAttestation;
  prove(req: ProveRequest, opts?: ProveOptions): Promise<ProveResult>;
}

export interface SigilAztecProverOptions extends BBPrivateKernelProverOptions {
  /** A connected client; or give `endpoint` (and `verify`) to connect on first use. */
  client?: ChonkProvingClient;
  endpoint?: string;
  /** How the enclave's attestation is checked when connecting to `endpoint`: `pcrs` (PCR0 at
   * least, e.g. `pcrPinsFromManifest(manifest)`) is required for an AWS enclave, unless
   * `anyImage: true` (which trusts whatever image answers with the witnesses). */
  verify?: ConnectOptions;
  /** The bb version the enclave proves with (default: the one @aztec/bb-prover 4.1.2 uses). */
  bbVersion?: string;
  /** Each poll of the job's state. */
  onProgress?: (s: JobStatus) => void;
  signal?: AbortSignal;
  /** Give up waiting after this long (default: the client's, 10 minutes). */
  timeoutMs?: number;
}

/** The bb versions an attested image serves, by the names requests use: user_data's `bbs`
 * list (name per entry), or, from an image that predates it, the one `bb` (its version up to
 * the first "-", as the enclave names it). */
export function servedBbVersions(att: VerifiedAttestation): string[] {
  const listed = att.userData.bbs;
  if (listed && listed.length > 0) return listed.map((b) => b.name);
  const v = att.userData.bb?.version;
  return v ? [v.split("-")[0]!] : [];
}

/** Refuses, by name, a bb version the attested image does not serve. */
export function checkServesBb(att: VerifiedAttestation, version: string): void {
  const served = servedBbVersions(att);
  if (!served.includes(version)) {
    throw new SigilError(
      "unknown_bb_version",
      `the attested enclave image does not serve bb ${JSON.stringify(version)} (it serves: ${served.join(", ") || "none"})`,
    );
  }
}

/** bb's Chonk proof file -> what the local prover returns: the file is the proof's fields,
 * 32 bytes each, public inputs first (as Aztec's readChonkProofFromOutputDirectory reads it). */
export function chonkProofFromBb(proof: Uint8Array): ChonkProofWithPublicInputs {
  if (proof.length === 0 || proof.length % 32 !== 0) {
    throw new SigilError("protocol", `a Chonk proof of ${proof.length} bytes is not a list of 32-byte fields`);
  }
  const fields: Uint8Array[] = [];
  for (let i = 0; i < proof.length; i += 32) fields.push(proof.subarray(i, i + 32));
  return ChonkProofWithPublicInputs.fromBufferArray(fields);
}

/** The Chonk input stack bb's CLI reads, exactly as Aztec's native prover writes it. */
export function chonkInputs(steps: PrivateExecutionStep[]): Uint8Array {
  return new Uint8Array(serializePrivateExecutionSteps(steps));
}

/**
 * A drop-in private-kernel prover for a PXE: `createChonkProof` runs in a sigil enclave.
 *
 * ```ts
 * const prover = new SigilAztecProver(new WASMSimulator(), { endpoint: "https://prover.example", verify: { pcrs } });
 * const pxe = await createPXE(node, config, { proverOrOptions: prover });
 * ```
 */
export class SigilAztecProver extends BBLazyPrivateKernelProver {
  private readonly sigil: SigilAztecProverOptions;
  private connecting?: Promise<ChonkProvingClient>;

  constructor(simulator: CircuitSimulator, options: SigilAztecProverOptions) {
    const { client, endpoint, verify, bbVersion, onProgress, signal, timeoutMs, ...bbOptions } = options;
    super(simulator, bbOptions);
    if (!client && !endpoint) throw new TypeError("SigilAztecProver needs a client or an endpoint");
    // The private execution's witnesses go to whichever image answers at `endpoint`: pin it.
    // (A simulated enclave, trustTestRoot, is pinned by nothing; connect still refuses an AWS
    // document without PCR0 then.)
    if (!client && !verify?.pcrs?.[0] && verify?.anyImage !== true && verify?.trustTestRoot !== true) {
      throw new AttestationError("pcr", "SigilAztecProver: no image pinned: pass verify.pcrs (pcrPinsFromManifest(pcr-manifest.json)), a connected client, or verify.anyImage: true, which trusts whatever image answers");
    }
    this.sigil = options;
  }

  /** The connected client (connecting, and verifying the attestation, on first use). */
  client(): Promise<ChonkProvingClient> {
    if (this.sigil.client) return Promise.resolve(this.sigil.client);
    this.connecting ??= SigilClient.connect(this.sigil.endpoint!, this.sigil.verify!).catch((e) => {
      this.connecting = undefined; // let a later call try again
      throw e;
    });
    return this.connecting;
  }

  override async createChonkProof(executionSteps: PrivateExecutionStep[]): Promise<ChonkProofWithPublicInputs> {
    const bbVersion = this.sigil.bbVersion ?? AZTEC_BB_VERSION;
    const client = await this.client();
    // A proof from another bb version would not verify against this Aztec release.
    checkServesBb(client.attestation, bbVersion);
    const ivcInputs = chonkInputs(executionSteps);
    let result: ProveResult;
    try {
      result = await client.prove(
        { scheme: "chonk", ivcInputs, bbVersion },
        {
          ...(this.sigil.onProgress ? { onProgress: this.sigil.onProgress } : {}),
          ...(this.sigil.signal ? { signal: this.sigil.signal } : {}),
          ...(this.sigil.timeoutMs !== undefined ? { timeoutMs: this.sigil.timeoutMs } : {}),
        },
      );
    } catch (e) {
      if (e instanceof ProveError) {
        throw new ProveError(e.code, `sigil Chonk proof (bb ${bbVersion}) failed: ${e.code}: ${e.message}`, e.jobId);
      }
      throw e;
    }
    return chonkProofFromBb(result.proof);
  }
}

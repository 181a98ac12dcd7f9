/** Every error the SDK throws. `code` is stable: an enclave API code (`owner_mismatch`,
 * `body_too_large`, ...), a job failure code, or one of the SDK's own (`transport`,
 * `protocol`, `encap_*`, `attestation`). `status` is the sealed HTTP status when the enclave
 * answered. */
export class SigilError extends Error {
  code: string;
  status?: number;
  constructor(code: string, message: string, status?: number) {
    super(message);
    this.name = "SigilError";
    this.code = code;
    if (status !== undefined) this.status = status;
  }
}

/** An attestation document was refused. `check` names the check that failed. */
export class AttestationError extends SigilError {
  check: string;
  constructor(check: string, message: string) {
    super("attestation", `${check}: ${message}`);
    this.name = "AttestationError";
    this.check = check;
  }
}

/** A proving job ended in failure: `code` is the prover's (`unsatisfied`, `bad_circuit`,
 * `crs_too_small`, `time_limit`, `memory_limit`, `prover_failed`, `displaced`), the message
 * bb's. */
export class ProveError extends SigilError {
  jobId: string;
  constructor(code: string, message: string, jobId: string) {
    super(code, message, 422);
    this.name = "ProveError";
    this.jobId = jobId;
  }
}

/** The sealed channel failed (the Rust `EncapError` codes). Every decryption failure is the
 * one `encap_decrypt_failed`. */
export class EncapError extends SigilError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "EncapError";
  }
}

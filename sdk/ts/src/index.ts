export { SigilError, AttestationError, ProveError, EncapError } from "./errors.js";
export { verifyAttestation, type VerifyOptions, type VerifiedAttestation } from "./attestation/verify.js";
export { pcrPinsFromManifest } from "./manifest.js";
export { decodeImageInfo, encodeImageInfo, type ImageInfo, type BbInfo } from "./userData.js";
export { SigilClient, requirePinnedImage, type ConnectOptions, type ProveRequest, type ProveOptions, type Job } from "./client.js";
export { sealRequest, ServerKey, ResponseOpener, ResponseSealer } from "./encap.js";
export { OwnerKey, ownerMessage, taggedDigest, verifyBip340 } from "./owner.js";
export { vaultDigest } from "./vault.js";
export * as musig2 from "./musig2.js";
export { SignerKey, SessionMismatchError, checkSession, expectedOfRequest, type ExpectedSession, type ExpectedKey, type CheckedSession } from "./musig2.js";
export { inputsSha256, chonkInputsSha256, cancelToken, sealResult, openResult, MAX_STATUS_WAIT_S, type JobStatus, type JobProgress, type CancelAnswer, type JobResult, type ProveResult } from "./prove.js";
export { hex, unhex, b64, unb64 } from "./bytes.js";
export * as frost from "./frost.js";
export {
  frostKeygen, frostSign, frostRefresh, frostCommit, frostRepair, frostMembers, taprootOutputKey, FrostCalls,
  type FrostGroup, type FrostSignatures, type SignOptions as FrostSignOptions, type GroupView as FrostGroupView,
} from "./frost.js";

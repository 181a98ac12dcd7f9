//! No sequence of API calls makes a held key emit two partial signatures from one nonce.
//!
//! A seeded random walk issues every call — valid, replayed, altered, out of order, after
//! expiry, across simulated restarts — over several concurrent sessions. After every step it
//! checks: each public nonce the engine ever consumed was consumed once; each held signer
//! signed each message of a session at most once; no two sessions (or signers, or messages)
//! ever shared an engine public nonce; terminal states never change; every completed session's
//! signatures verify under libsecp256k1.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use sigil_signing::{
    AggregateInfo, AggregateSpec, Engine, Error, KeyOrder, MemoryRecords, ParticipantSpec,
    SessionId, SessionInfo, SessionState, SigningEvent,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct ExtState {
    index: u32,
    signer: External,
    nonces: Option<Vec<[u8; 66]>>,
    psigs: Option<Vec<[u8; 32]>>,
}

struct Tracked {
    info: SessionInfo,
    agg: usize,
    messages: Vec<Vec<u8>>,
    externals: Vec<ExtState>,
    approval_sigs: Vec<(usize, [u8; 64])>,
    terminal: Option<SessionState>,
    /// Created by an engine that has since "restarted".
    lost: bool,
}

struct World {
    vault: MemoryRecords,
    engine: Engine<MemoryRecords>,
    owners: Vec<Owner>,
    aggs: Vec<AggregateInfo>,
    sessions: Vec<Tracked>,
    now: u64,
    /// Signing events of engines that were replaced.
    past_events: Vec<SigningEvent>,
    /// Every engine public nonce ever shown, and where.
    seen_nonces: HashMap<[u8; 66], (SessionId, u32, u32)>,
    restarts: u64,
    completed: usize,
    failed: usize,
    expired: usize,
}

fn world(seed: u64) -> World {
    let vault = MemoryRecords::new();
    let engine = Engine::new(vault.clone(), entropy(seed));
    let owners = vec![Owner::new(seed * 10 + 1), Owner::new(seed * 10 + 2)];
    let k0 = engine.generate_key(owners[0].xonly(), NOW).unwrap().id;
    let k1 = engine.generate_key(owners[1].xonly(), NOW).unwrap().id;
    let k2 = engine.generate_key(owners[0].xonly(), NOW).unwrap().id;
    let e = |i| ParticipantSpec::External(External::new(seed * 10 + i).pubkey);
    let specs = [
        // 2 held (two owners) + 1 external.
        (
            vec![ParticipantSpec::Held(k0), ParticipantSpec::Held(k1), e(1)],
            KeyOrder::Sorted,
        ),
        // 3 held (k0 and k2 share an owner) + 2 external.
        (
            vec![
                e(2),
                ParticipantSpec::Held(k0),
                e(3),
                ParticipantSpec::Held(k2),
                ParticipantSpec::Held(k1),
            ],
            KeyOrder::AsGiven,
        ),
    ];
    let aggs = specs
        .into_iter()
        .map(|(participants, order)| {
            engine
                .create_aggregate(
                    &AggregateSpec {
                        participants,
                        order,
                        tweaks: vec![],
                    },
                    &owners[0].xonly(),
                    NOW,
                )
                .unwrap()
        })
        .collect();
    World {
        vault,
        engine,
        owners,
        aggs,
        sessions: Vec::new(),
        now: NOW,
        past_events: Vec::new(),
        seen_nonces: HashMap::new(),
        restarts: 0,
        completed: 0,
        failed: 0,
        expired: 0,
    }
}

impl World {
    fn ext_seed(&self, pubkey: &[u8; 33], seed: u64) -> u64 {
        (1..=3)
            .map(|i| seed * 10 + i)
            .find(|i| External::new(*i).pubkey == *pubkey)
            .unwrap()
    }

    fn create(&mut self, rng: &mut Rng, seed: u64) {
        let agg_i = rng.below(self.aggs.len());
        let agg = self.aggs[agg_i].clone();
        let n_msgs = 1 + rng.below(2) as u64;
        let sid = self.sessions.len() as u64;
        let messages: Vec<Vec<u8>> = (0..n_msgs)
            .map(|m| {
                // Sometimes the same message as another session: nonces must still differ.
                if rng.chance(50) {
                    bytes32("common", m).to_vec()
                } else {
                    bytes32("msg", sid * 8 + m).to_vec()
                }
            })
            .collect();
        let ttl = 100 + rng.below(400) as u64;
        let info = match self.engine.create_session(
            &plain_request(agg.id, &messages, self.now + ttl),
            &creator(&self.engine, agg.id),
            self.now,
        ) {
            Ok(i) => i,
            Err(e) => panic!("create_session: {e}"),
        };
        let externals = agg
            .participants
            .iter()
            .filter(|p| p.held.is_none())
            .map(|p| ExtState {
                index: p.index,
                signer: External::with_stream(self.ext_seed(&p.public_key, seed), sid),
                nonces: None,
                psigs: None,
            })
            .collect();
        let approval_sigs = self
            .owners
            .iter()
            .enumerate()
            .filter(|(_, o)| info.approvers.contains(&o.xonly()))
            .map(|(i, o)| (i, o.approve(&info.digest)))
            .collect();
        self.sessions.push(Tracked {
            info,
            agg: agg_i,
            messages,
            externals,
            approval_sigs,
            terminal: None,
            lost: false,
        });
    }

    fn step(&mut self, rng: &mut Rng, seed: u64) {
        let live: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].terminal.is_none() && !self.sessions[i].lost)
            .collect();
        if live.is_empty() || (live.len() < 6 && rng.chance(10)) {
            self.create(rng, seed);
            return;
        }
        // Mostly drive live sessions; sometimes poke finished or lost ones.
        let si = if rng.chance(85) {
            live[rng.below(live.len())]
        } else {
            rng.below(self.sessions.len())
        };
        let id = self.sessions[si].info.id;
        let now = self.now;
        let op = rng.below(100);
        let result: Result<(), Error> = match op {
            // Approve: correct, replayed, by a stranger, or over the wrong digest.
            0..=19 => {
                let s = &self.sessions[si];
                let (owner_i, sig) = s.approval_sigs[rng.below(s.approval_sigs.len())];
                let owner = self.owners[owner_i].xonly();
                let sig = match rng.below(10) {
                    0 => [9u8; 64],
                    1 => self.owners[owner_i].approve(&[1u8; 32]),
                    _ => sig,
                };
                self.engine.approve(&id, &owner, &sig, now).map(drop)
            }
            // Fetch the engine's public nonces and record where each was seen.
            20..=29 => self.engine.public_nonces(&id, now).map(|all| {
                for p in all {
                    for (m, n) in p.nonces.iter().enumerate() {
                        let place = (id, p.index, m as u32);
                        let prev = self.seen_nonces.insert(*n, place);
                        assert!(
                            prev.is_none() || prev == Some(place),
                            "engine nonce shown in two places: {prev:?} and {place:?}"
                        );
                    }
                }
            }),
            // Submit nonces: the external's own (first time or replay), or a conflicting set.
            30..=49 => {
                let s = &mut self.sessions[si];
                let msgs = s.messages.clone();
                let e = rng.below(s.externals.len());
                let ext = &mut s.externals[e];
                let nonces = if ext.nonces.is_none() || rng.chance(80) {
                    ext.nonces
                        .get_or_insert_with(|| ext.signer.nonces(&msgs))
                        .clone()
                } else {
                    External::with_stream(99, rng.next()).nonces(&msgs)
                };
                self.engine
                    .submit_nonces(&id, ext.index, &nonces, now)
                    .map(drop)
            }
            // Fetch the round and submit partial signatures: correct, replayed, altered, or
            // against a wrong round id.
            50..=74 => match self.engine.nonce_round(&id, now) {
                Err(e) => Err(e),
                Ok(round) => {
                    let ctxs = common::contexts(
                        &self.aggs[self.sessions[si].agg],
                        &vec![None; self.sessions[si].messages.len()],
                    );
                    let s = &mut self.sessions[si];
                    let e = rng.below(s.externals.len());
                    let msgs = s.messages.clone();
                    let ext = &mut s.externals[e];
                    if ext.nonces.is_none() {
                        Ok(())
                    } else {
                        let psigs = ext
                            .psigs
                            .get_or_insert_with(|| {
                                ext.signer.sign(&ctxs, &round.aggregated, &msgs, None)
                            })
                            .clone();
                        let mut send = psigs;
                        let mut round_id = round.round_id;
                        match rng.below(12) {
                            0 => send[0][31] ^= 1,
                            1 => round_id[0] ^= 1,
                            _ => {}
                        }
                        self.engine
                            .submit_partial_signatures(&id, &round_id, ext.index, &send, now)
                            .map(drop)
                    }
                }
            },
            75..=84 => self.engine.session_status(&id, now).map(drop),
            85 if rng.chance(30) => self.engine.abort_session(&id, now).map(drop),
            86..=94 => {
                self.now += rng.below(15) as u64;
                if rng.chance(30) {
                    self.engine.prune_sessions(self.now).map(drop)
                } else {
                    Ok(())
                }
            }
            _ => {
                if rng.chance(5) {
                    self.restart(seed);
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            // Errors are expected (that is the point); they just must be clean ones.
            assert!(!e.code().is_empty());
            if self.sessions[si].lost {
                assert_eq!(e, Error::UnknownSession);
            }
        }
        self.check(si);
    }

    fn restart(&mut self, seed: u64) {
        let (events, total) = self.engine.signing_events();
        assert_eq!(events.len() as u64, total);
        self.past_events.extend(events);
        self.restarts += 1;
        self.engine = Engine::new(self.vault.clone(), entropy(seed * 1000 + self.restarts));
        for s in &mut self.sessions {
            s.lost = true;
        }
    }

    fn check(&mut self, si: usize) {
        // 1. Every consumed nonce was consumed once, and each (session, signer, message)
        //    produced at most one partial signature.
        let (events, total) = self.engine.signing_events();
        assert_eq!(events.len() as u64, total);
        let mut nonces = HashSet::new();
        let mut slots = HashSet::new();
        for e in self.past_events.iter().chain(events.iter()) {
            assert!(
                nonces.insert(e.public_nonce),
                "a nonce was used twice: {e:?}"
            );
            assert!(
                slots.insert((e.session, e.signer_index, e.message_index)),
                "signer signed twice: {e:?}"
            );
            // 2. Each consumed nonce is the one shown for that place, if it was shown.
            if let Some(place) = self.seen_nonces.get(&e.public_nonce) {
                assert_eq!(*place, (e.session, e.signer_index, e.message_index));
            }
        }
        // 3. Terminal states never change; completed signatures verify.
        let s = &mut self.sessions[si];
        match self.engine.session_status(&s.info.id, self.now) {
            Err(Error::UnknownSession) => {}
            Err(e) => panic!("status failed: {e}"),
            Ok(status) => {
                if let Some(t) = &s.terminal {
                    assert_eq!(&status.state, t, "terminal state changed");
                } else if status.state.is_terminal() {
                    match status.state {
                        SessionState::Completed { .. } => {
                            let tweaks = vec![None; s.messages.len()];
                            assert_all_valid(&status, &self.aggs[s.agg], &s.messages, &tweaks);
                            self.completed += 1;
                        }
                        SessionState::Failed { .. } => self.failed += 1,
                        _ => self.expired += 1,
                    }
                    s.terminal = Some(status.state);
                }
            }
        }
    }
}

#[test]
fn random_call_sequences_never_reuse_a_nonce() {
    let (mut completed, mut failed, mut expired, mut restarts, mut used) = (0, 0, 0, 0, 0);
    for seed in 1..=4u64 {
        let mut w = world(seed);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        for _ in 0..700 {
            w.step(&mut rng, seed);
        }
        completed += w.completed;
        failed += w.failed;
        expired += w.expired;
        restarts += w.restarts;
        used += w.past_events.len() + w.engine.signing_events().0.len();
    }
    // The walk must actually reach signing, or it proves nothing.
    assert!(completed >= 10, "only {completed} sessions completed");
    assert!(used >= 40, "only {used} nonces used");
    // ...and the hostile paths too.
    assert!(
        failed >= 1 && expired >= 1 && restarts >= 1,
        "{failed} failed, {expired} expired, {restarts} restarts"
    );
    println!(
        "completed {completed}, failed {failed}, expired {expired}, restarts {restarts}, nonces consumed {used}"
    );
}

#[test]
fn sessions_over_the_same_message_never_share_a_nonce() {
    let mut w = world(42);
    let mut all: HashSet<[u8; 66]> = HashSet::new();
    let mut rng = Rng(7);
    for round in 0..20 {
        w.create(&mut rng, 42);
        let s = w.sessions.last().unwrap();
        for (owner_i, sig) in s.approval_sigs.clone() {
            w.engine
                .approve(&s.info.id, &w.owners[owner_i].xonly(), &sig, w.now)
                .unwrap();
        }
        for p in w.engine.public_nonces(&s.info.id, w.now).unwrap() {
            for n in p.nonces {
                assert!(all.insert(n), "nonce repeated in round {round}");
            }
        }
        if round % 5 == 4 {
            // Restarting with the *same* entropy seed, in the same second, must not repeat
            // nonces either: the session id (and so every nonce) mixes the engine's per-boot
            // id, so a replayed RNG stream alone is not enough to repeat one.
            w.engine = Engine::new(w.vault.clone(), entropy(42));
        }
    }
}

#[test]
fn engines_started_in_the_same_second_with_the_same_inputs_pick_different_session_ids() {
    // Two boots over the same records with a replayed entropy stream, at the same time: only
    // the per-boot id tells their sessions apart.
    let records = MemoryRecords::new();
    let owner = Owner::new(1);
    let ext = External::new(2);
    let setup = Engine::new(records.clone(), entropy(9));
    let key = setup.generate_key(owner.xonly(), NOW).unwrap().id;
    let agg = held_and_external(&setup, key, &ext, KeyOrder::Sorted);
    let request = plain_request(agg.id, &[vec![1; 32]], NOW + 60);
    let a = Engine::new(records.clone(), entropy(42));
    let b = Engine::new(records.clone(), entropy(42));
    let sa = a.create_session(&request, &owner.xonly(), NOW).unwrap();
    let sb = b.create_session(&request, &owner.xonly(), NOW).unwrap();
    assert_ne!(sa.id, sb.id);
    assert_ne!(sa.digest, sb.digest);
}

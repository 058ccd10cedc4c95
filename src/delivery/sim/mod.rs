//! A deterministic, seeded simulation of the delivery engine: no sockets,
//! virtual time, and faults drawn from the seed.
//!
//! Each seed draws a world ([`setup`]: limits, retry policy, ring sizes,
//! users and devices, how often each fault happens) and then a few hundred
//! steps: sends (with and without ACK, to one device or all, to offline
//! users, with duplicate ids, too large, past the pending cap, with loop or
//! thread waiters), whole and partial writes, ACKs (in order, late,
//! duplicate, foreign, unknown, early), connection breaks, closes now and
//! after data, replacements by the same device, reconnects inside and
//! outside the backoff window, offline stores and replays, timer firings,
//! full rings and backlogs, a held handler worker (its queue overflows),
//! and shutdown. The engine gets exactly the calls the hub makes for each.
//!
//! After every step the checker ([`check`]) and the engine's own audit
//! ([`Engine::audit`](crate::delivery::Engine)) hold it to the invariants
//! listed in RELIABILITY.md; at the end every device reads and ACKs
//! everything until the engine is quiet, and nothing may be left.
//!
//! `cargo test --lib delivery::sim` runs the CI seeds (and the self-test
//! below); environment variables change the run:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WSHUB_SIM_SEEDS` | 3000 | seeds to run |
//! | `WSHUB_SIM_FIRST` | 0 | first seed |
//! | `WSHUB_SIM_STEPS` | 300 | steps per seed (before the drain) |
//! | `WSHUB_SIM_SEED` | — | replay this one seed only |
//! | `WSHUB_SIM_TRACE` | — | with `WSHUB_SIM_SEED`: print every step |
//!
//! A failure prints its seed, step, the broken invariant, the last steps,
//! and the command that replays it exactly.

mod check;
mod net;
mod setup;
mod world;

use std::time::Instant;

use crate::delivery::engine::audit::Mutation;
use setup::Setup;
use world::{Faults, Sim};

/// How a run went.
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    tally: check::Tally,
    faults: Faults,
    steps: u64,
}

impl Summary {
    fn add(&mut self, o: &Summary) {
        let (t, u) = (&mut self.tally, &o.tally);
        t.deliveries += u.deliveries;
        t.successes += u.successes;
        t.failures += u.failures;
        t.retries += u.retries;
        t.acks_accepted += u.acks_accepted;
        t.acks_ignored += u.acks_ignored;
        t.failures_reported += u.failures_reported;
        t.stored += u.stored;
        t.replays += u.replays;
        for (a, b) in t.final_errors.iter_mut().zip(u.final_errors) {
            *a += b;
        }
        let (f, g) = (&mut self.faults, &o.faults);
        f.breaks += g.breaks;
        f.closes += g.closes;
        f.replacements += g.replacements;
        f.partial_writes += g.partial_writes;
        f.odd_acks += g.odd_acks;
        f.duplicate_ids += g.duplicate_ids;
        f.shutdowns += g.shutdowns;
        f.gate_holds += g.gate_holds;
        f.handler_drops += g.handler_drops;
        self.steps += o.steps;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (t, x) = (&self.tally, &self.faults);
        let mut reasons: Vec<(u64, &str)> = crate::failure::reason::FailureReason::ALL
            .iter()
            .map(|r| (t.final_errors[r.index() as usize], r.name()))
            .filter(|(n, _)| *n > 0)
            .collect();
        reasons.sort_by(|a, b| b.cmp(a));
        let reasons: Vec<String> = reasons.iter().map(|(n, r)| format!("{r} {n}")).collect();
        write!(
            f,
            "{} steps; {} deliveries ({} replays): {} succeeded, {} failed ({}); \
             {} retries; ACKs {} taken, {} ignored; {} failures reported, {} dropped by a \
             full handler queue; {} stored offline; faults: {} breaks, {} closes, {} \
             replacements, {} partial writes, {} odd ACKs, {} duplicate ids, {} shutdowns, \
             {} handler holds",
            self.steps,
            t.deliveries,
            t.replays,
            t.successes,
            t.failures,
            reasons.join(", "),
            t.retries,
            t.acks_accepted,
            t.acks_ignored,
            t.failures_reported,
            x.handler_drops,
            t.stored,
            x.breaks,
            x.closes,
            x.replacements,
            x.partial_writes,
            x.odd_acks,
            x.duplicate_ids,
            x.shutdowns,
            x.gate_holds
        )
    }
}

/// A seed that broke an invariant.
#[derive(Debug, Clone)]
struct Failed {
    seed: u64,
    steps: usize,
    step: usize,
    why: String,
    last: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at step {}: {}",
            self.seed, self.step, self.why
        )?;
        writeln!(f, "last steps:")?;
        for line in &self.last {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "replay: WSHUB_SIM_SEED={} WSHUB_SIM_STEPS={} cargo test --lib \
             delivery::sim::the_engine_holds -- --nocapture (add WSHUB_SIM_TRACE=1 to print \
             every step)",
            self.seed, self.steps
        )
    }
}

/// Runs one seed to its end.
fn run_seed(seed: u64, steps: usize, mutation: Mutation, trace: bool) -> Result<Summary, Failed> {
    let mut setup = Setup::from_seed(seed, steps);
    setup.trace = trace;
    if trace {
        eprintln!("sim seed {seed}: {setup:#?}");
    }
    let mut sim = Sim::new(setup, mutation);
    let mut outcome = sim.connect_some();
    for _ in 0..steps {
        if outcome.is_err() {
            break;
        }
        let action = sim.pick();
        outcome = sim.step(action);
    }
    if outcome.is_ok() {
        outcome = sim.drain();
    }
    let failed = |sim: &Sim, why: String| Failed {
        seed,
        steps,
        step: sim.step,
        why,
        last: sim
            .trace
            .iter()
            .enumerate()
            .rev()
            .take(25)
            .rev()
            .map(|(i, a)| format!("{i}: {a:?}"))
            .collect(),
    };
    if let Err(why) = outcome {
        return Err(failed(&sim, why));
    }
    let mut summary = Summary {
        tally: sim.model.tally,
        faults: sim.faults,
        steps: sim.step as u64,
    };
    let step = sim.step;
    summary.faults.handler_drops = sim.close_handlers().map_err(|why| Failed {
        seed,
        steps,
        step,
        why,
        last: Vec::new(),
    })?;
    Ok(summary)
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `seeds` seeds from `first` on every core; the lowest failing seed
/// (if any) and the totals.
fn run_many(first: u64, seeds: u64, steps: usize, mutation: Mutation) -> (Summary, Option<Failed>) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8) as u64;
    let results: Vec<(Summary, Option<Failed>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut total = Summary::default();
                    let mut seed = first + t;
                    while seed < first + seeds {
                        match run_seed(seed, steps, mutation, false) {
                            Ok(sum) => total.add(&sum),
                            Err(f) => return (total, Some(f)),
                        }
                        seed += threads;
                    }
                    (total, None)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = Summary::default();
    let mut first_failure: Option<Failed> = None;
    for (sum, failed) in results {
        total.add(&sum);
        if let Some(f) = failed
            && first_failure.as_ref().is_none_or(|g| f.seed < g.seed)
        {
            first_failure = Some(f);
        }
    }
    (total, first_failure)
}

/// The CI run (or the one `WSHUB_SIM_*` asks for).
#[test]
fn the_engine_holds_its_invariants_under_seeded_faults() {
    let steps = env("WSHUB_SIM_STEPS").unwrap_or(300) as usize;
    if let Some(seed) = env("WSHUB_SIM_SEED") {
        let trace = std::env::var_os("WSHUB_SIM_TRACE").is_some();
        match run_seed(seed, steps, Mutation::None, trace) {
            Ok(sum) => eprintln!("simulation seed {seed} passed: {sum}"),
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let seeds = env("WSHUB_SIM_SEEDS").unwrap_or(3000);
    let first = env("WSHUB_SIM_FIRST").unwrap_or(0);
    let started = Instant::now();
    let (total, failed) = run_many(first, seeds, steps, Mutation::None);
    if let Some(f) = failed {
        panic!("{f}");
    }
    eprintln!(
        "simulation: seeds {first}..{} x {steps} steps passed in {:.1?}: {total}",
        first + seeds,
        started.elapsed()
    );
}

/// The checker has teeth: each deliberate bug is caught by some seed, with
/// the invariant that names it.
fn caught(mutation: Mutation, expect: &[&str]) {
    let (_, failed) = run_many(0, 400, 300, mutation);
    let f = failed.unwrap_or_else(|| panic!("{mutation:?}: no seed of 400 caught it"));
    eprintln!("{mutation:?} caught:\n{f}");
    assert!(
        expect.iter().any(|e| f.why.contains(e)),
        "{mutation:?} caught by seed {} for another reason: {}",
        f.seed,
        f.why
    );
}

#[test]
fn a_success_reported_on_write_for_a_require_ack_message_is_caught() {
    caught(Mutation::SuccessOnWrite, &["success, but"]);
}

#[test]
fn a_retry_to_a_device_that_took_the_message_is_caught() {
    caught(Mutation::RetryTakenDevices, &["which already took it"]);
}

#[test]
fn a_backlog_lost_on_close_is_caught() {
    caught(
        Mutation::LoseBacklogOnClose,
        &["backlogged", "never ended", "stuck"],
    );
}

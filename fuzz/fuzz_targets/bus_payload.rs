//! What a node reads on the bus (`wschat:bus`), and the sequencer that puts
//! each room's runs in order, on arbitrary bytes. The input, cut at each
//! `\0`, is a series of payloads, each read with `Published::parse`, as the
//! subscriber reads what Redis publishes. Checked:
//! - nothing panics, whatever the bytes;
//! - a run read has at least one message and no message with a newline;
//!   its ids are consecutive from `first` to `last()`, none before its
//!   epoch and all below `ID_LIMIT` (2^53, where Lua's and JavaScript's
//!   numbers stop being exact), so no sum of ids can overflow;
//! - a run written back as the script writes it (`m ROOM EPOCH FIRST`,
//!   then one message a line) reads back the same, and so does a note
//!   written with `Note::payload`;
//! - the runs go through a `Sequencer` as the subscriber takes them (plan,
//!   then advance), and what the subscriber would hand on for each plan —
//!   `Deliver` the run from `skip`, `Fill` the ids from the stream after
//!   `after` and then the run, `Reset` the stream's recent ids from the
//!   epoch and then the run, `Repeat` nothing — is checked against a model
//!   of the guarantee: in each room, the ids handed on under one epoch are
//!   consecutive with no repeat, a new epoch is only ever a later one, and
//!   every run that brings an id past what was handed on is not skipped.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use wschat::chat::bus::sequence::{Plan, Sequencer};
use wschat::chat::bus::wire::{ID_LIMIT, Published, Run};

/// What the model says the subscriber has handed on of a room: the epoch
/// and the last id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handed {
    epoch: u64,
    last: u64,
}

fn written(run: &Run) -> Vec<u8> {
    let mut text = format!("m {} {} {}", run.room.as_str(), run.epoch, run.first);
    for m in &run.messages {
        text.push('\n');
        text.push_str(m);
    }
    text.into_bytes()
}

fn check_run(run: &Run) {
    assert!(!run.messages.is_empty());
    assert!(run.messages.iter().all(|m| !m.contains('\n')));
    assert!(run.epoch <= run.first && run.last() < ID_LIMIT);
    let ids: Vec<u64> = run.numbered().map(|(id, _)| id).collect();
    let want: Vec<u64> = (run.first..=run.last()).collect();
    assert_eq!(ids, want);
    match Published::parse(&written(run)) {
        Ok(Published::Run(back)) => assert_eq!(&back, run),
        other => panic!("a run written back reads as {other:?}"),
    }
}

fn sequence(sequencer: &mut Sequencer, handed: &mut HashMap<String, Handed>, run: &Run) {
    let room = run.room.as_str().to_owned();
    let before = handed.get(&room).copied();
    assert_eq!(
        sequencer.position(&run.room).map(|p| Handed {
            epoch: p.epoch,
            last: p.last
        }),
        before,
        "the sequencer and the model agree on what was handed on"
    );
    let plan = sequencer.plan(&run.room, run.epoch, run.first, run.last());
    // The ids handed on, lowest and highest, for each plan.
    let range = match plan {
        Plan::Repeat => {
            let p = before.expect("a repeat of something handed on");
            assert!(
                run.epoch < p.epoch || (run.epoch == p.epoch && run.last() <= p.last),
                "a run with new ids is skipped: {run:?} after {p:?}"
            );
            return;
        }
        Plan::Deliver { skip } => {
            assert!(skip < run.messages.len(), "a delivery of nothing");
            (run.first + skip as u64, run.last())
        }
        Plan::Fill { after } => {
            let p = before.expect("a gap after something handed on");
            assert_eq!((run.epoch, after), (p.epoch, p.last));
            assert!(run.first > after + 1, "a fill of no gap");
            (after + 1, run.last())
        }
        Plan::Reset => {
            // The stream's recent ids of the epoch, then the run: from the
            // epoch at the lowest.
            assert!(
                run.first > run.epoch,
                "a reset where the run starts its epoch"
            );
            (run.epoch, run.last())
        }
    };
    match before {
        Some(p) if p.epoch == run.epoch => {
            assert_eq!(range.0, p.last + 1, "a gap or a repeat in {room}: {plan:?}");
        }
        Some(p) => assert!(run.epoch > p.epoch, "back to an older epoch: {plan:?}"),
        None => {}
    }
    if before.is_none_or(|p| p.epoch != run.epoch) {
        assert!(range.0 >= run.epoch, "an id before its epoch: {plan:?}");
    }
    assert!(range.0 <= range.1);
    sequencer.advance(&run.room, run.epoch, run.last());
    handed.insert(
        room,
        Handed {
            epoch: run.epoch,
            last: range.1,
        },
    );
}

fuzz_target!(|data: &[u8]| {
    let mut sequencer = Sequencer::default();
    let mut handed = HashMap::new();
    for payload in data.split(|&b| b == 0) {
        match Published::parse(payload) {
            Ok(Published::Run(run)) => {
                check_run(&run);
                sequence(&mut sequencer, &mut handed, &run);
            }
            Ok(Published::Note { node, note }) => {
                match Published::parse(note.payload(&node).as_bytes()) {
                    Ok(Published::Note {
                        node: n,
                        note: back,
                    }) => {
                        assert_eq!((n, back), (node, note));
                    }
                    other => panic!("a note written back reads as {other:?}"),
                }
            }
            Err(_) => {}
        }
    }
});

//! The work-request state machine.
//!
//! ```text
//! ACCEPTED ──claim──▶ IN_PROGRESS ──finish──▶ SUCCEEDED | FAILED
//!    │                     │
//!    │cancel               │cancel
//!    ▼                     ▼
//! CANCELED ◀──stopped── CANCELLING ──finished anyway──▶ SUCCEEDED | FAILED
//! ```
//!
//! A lease that expires (the agent went silent) ends an `IN_PROGRESS` or `CANCELLING` request
//! `FAILED`. Terminal states never change. The store applies each transition atomically with a
//! check that the previous state is still the one this table allows.

use crate::enums::WorkRequestStatus::{self, *};

/// Why a work request changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An agent takes the request under a lease.
    Claim,
    /// The agent reports success.
    Succeed,
    /// The agent reports failure.
    Fail,
    /// An operator asks to cancel.
    Cancel,
    /// The agent stopped at a safe point after a cancel.
    Stopped,
    /// The lease ran out without word from the agent.
    LeaseExpired,
}

/// The state `event` leads to from `from`, or `None` when the event is not allowed there.
pub fn transition(from: WorkRequestStatus, event: Event) -> Option<WorkRequestStatus> {
    match (from, event) {
        (Accepted, Event::Claim) => Some(InProgress),
        (Accepted, Event::Cancel) => Some(Canceled),
        (InProgress, Event::Succeed) | (Cancelling, Event::Succeed) => Some(Succeeded),
        (InProgress, Event::Fail) | (Cancelling, Event::Fail) => Some(Failed),
        (InProgress, Event::Cancel) => Some(Cancelling),
        (Cancelling, Event::Stopped) => Some(Canceled),
        (InProgress, Event::LeaseExpired) | (Cancelling, Event::LeaseExpired) => Some(Failed),
        _ => None,
    }
}

/// The log line recorded when an agent's report moves a work request that was `from` on
/// `event`; it tells a cancel that came too late apart from an ordinary finish.
pub fn finish_note(from: WorkRequestStatus, event: Event) -> &'static str {
    match (from, event) {
        (Cancelling, Event::Succeed) => {
            "Succeeded: the cancel came too late, the work had already finished"
        }
        (Cancelling, Event::Fail) => "Failed before the cancel took effect",
        (_, Event::Stopped) => "Canceled: the agent stopped at a safe point",
        (_, Event::Succeed) => "Succeeded",
        (_, Event::Fail) => "Failed",
        (_, Event::LeaseExpired) => "Failed: the agent's lease expired",
        (_, Event::Claim) => "Started by the agent",
        (_, Event::Cancel) => "Cancel requested",
    }
}

/// The status and `percentComplete` of a parent work request, derived from its children:
/// finished children count towards progress; the parent is terminal only when every child is,
/// `FAILED` if any child failed, `CANCELED` if the rest were canceled, else `SUCCEEDED`.
pub fn parent_status(children: &[WorkRequestStatus]) -> (WorkRequestStatus, f32) {
    if children.is_empty() {
        return (Succeeded, 100.0);
    }
    let done = children.iter().filter(|s| s.is_terminal()).count();
    let percent = done as f32 * 100.0 / children.len() as f32;
    let status = if done == children.len() {
        if children.contains(&Failed) {
            Failed
        } else if children.contains(&Canceled) && !children.contains(&Succeeded) {
            Canceled
        } else if children.contains(&Canceled) {
            // Some ran, some were canceled: the group action did not do all it was asked.
            Failed
        } else {
            Succeeded
        }
    } else if children.iter().all(|s| *s == Accepted) {
        Accepted
    } else if children.contains(&Cancelling) {
        Cancelling
    } else {
        InProgress
    };
    (status, percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [WorkRequestStatus; 6] = [
        Accepted, InProgress, Failed, Succeeded, Cancelling, Canceled,
    ];
    const EVENTS: [Event; 6] = [
        Event::Claim,
        Event::Succeed,
        Event::Fail,
        Event::Cancel,
        Event::Stopped,
        Event::LeaseExpired,
    ];

    #[test]
    fn every_legal_and_illegal_transition() {
        let legal = [
            (Accepted, Event::Claim, InProgress),
            (Accepted, Event::Cancel, Canceled),
            (InProgress, Event::Succeed, Succeeded),
            (InProgress, Event::Fail, Failed),
            (InProgress, Event::Cancel, Cancelling),
            (InProgress, Event::LeaseExpired, Failed),
            (Cancelling, Event::Stopped, Canceled),
            (Cancelling, Event::Succeed, Succeeded),
            (Cancelling, Event::Fail, Failed),
            (Cancelling, Event::LeaseExpired, Failed),
        ];
        for from in ALL {
            for event in EVENTS {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(transition(from, event), expected, "{from} on {event:?}");
            }
        }
        for terminal in [Succeeded, Failed, Canceled] {
            assert!(
                EVENTS.iter().all(|e| transition(terminal, *e).is_none()),
                "{terminal} is final"
            );
        }
    }

    #[test]
    fn a_late_cancel_is_noted() {
        assert_eq!(finish_note(InProgress, Event::Succeed), "Succeeded");
        assert!(finish_note(Cancelling, Event::Succeed).contains("too late"));
        assert!(finish_note(Cancelling, Event::Fail).contains("before the cancel"));
        assert!(finish_note(Cancelling, Event::Stopped).starts_with("Canceled"));
    }

    #[test]
    fn parents_follow_their_children() {
        assert_eq!(parent_status(&[Accepted, Accepted]), (Accepted, 0.0));
        assert_eq!(parent_status(&[InProgress, Accepted]), (InProgress, 0.0));
        assert_eq!(
            parent_status(&[Succeeded, Accepted, Accepted, Accepted]),
            (InProgress, 25.0)
        );
        assert_eq!(parent_status(&[Succeeded, Succeeded]), (Succeeded, 100.0));
        assert_eq!(parent_status(&[Succeeded, Failed]), (Failed, 100.0));
        assert_eq!(parent_status(&[Canceled, Canceled]), (Canceled, 100.0));
        assert_eq!(parent_status(&[Succeeded, Canceled]), (Failed, 100.0));
        assert_eq!(parent_status(&[Cancelling, Succeeded]), (Cancelling, 50.0));
        assert_eq!(parent_status(&[]), (Succeeded, 100.0));
    }
}

//! The scheduler against a fake clock: every case of the delivery policy.

use super::*;
use crate::upstream::policy::{judge as read, Answer, Receiver};

const SEC: Duration = Duration::from_secs(1);

fn limits(batched: bool) -> Limits {
    Limits {
        sink: Backoff {
            first: SEC,
            cap: 60 * SEC,
        },
        event: Backoff {
            first: SEC,
            cap: 600 * SEC,
        },
        store: Backoff {
            first: SEC,
            cap: 30 * SEC,
        },
        max_attempts: 4,
        max_age: Duration::from_secs(3600),
        batch: if batched { 200 } else { 8 },
        batched,
    }
}

fn pending(ords: std::ops::Range<i64>) -> Vec<Pending> {
    ords.map(|ord| Pending {
        ord,
        card_token: format!("card-{ord}"),
        attempts: 0,
        age: SEC,
    })
    .collect()
}

fn status(code: u16) -> Judged {
    read(
        &Answer::Status {
            code,
            retry_after: None,
            detail: String::new(),
        },
        Receiver::Webhook,
    )
}

fn ok() -> Judged {
    status(200)
}

/// When the sink may send its suspects again: past a pause of the whole
/// sink, and past the suspects' own wait.
fn waited(s: &Scheduler, now: Instant) -> Option<Instant> {
    let hard = match s.blocked(now) {
        Some(Blocked::Until(t)) => Some(t),
        _ => None,
    };
    hard.into_iter()
        .chain(s.suspects_until.filter(|t| *t > now))
        .max()
}

/// Answers each request: `poison` ords fail with `bad`, the rest with `rest`.
fn answer(
    requests: Vec<Request>,
    poison: &[i64],
    bad: &Judged,
    rest: &Judged,
) -> Vec<(Request, Option<Judged>)> {
    requests
        .into_iter()
        .map(|r| {
            let j = if r.items.iter().any(|p| poison.contains(&p.ord)) {
                bad.clone()
            } else {
                rest.clone()
            };
            (r, Some(j))
        })
        .collect()
}

fn delivered(o: &Outcome) -> Vec<i64> {
    o.records
        .iter()
        .filter_map(|r| match r {
            Record::Delivered { ord } => Some(*ord),
            _ => None,
        })
        .collect()
}

fn ords(requests: &[Request]) -> Vec<Vec<i64>> {
    requests
        .iter()
        .map(|r| r.items.iter().map(|p| p.ord).collect())
        .collect()
}

#[test]
fn a_poison_event_among_webhook_deliveries_is_backed_off_alone_then_parked() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let mut now = Instant::now();
    let mut due = pending(1..6);
    let mut parked = None;
    for round in 0..10 {
        let requests = s.plan(now, due.clone());
        let o = s.judge(now, 0, 0.5, answer(requests, &[3], &status(500), &ok()));
        assert!(o.paused.is_none(), "round {round}: the sink never pauses");
        // Everyone else goes through at once.
        due.retain(|p| !delivered(&o).contains(&p.ord));
        if round == 0 {
            assert_eq!(delivered(&o), [1, 2, 4, 5]);
        }
        for r in &o.records {
            match r {
                Record::Failed { ord, .. } => {
                    assert_eq!(*ord, 3);
                    due.iter_mut().find(|p| p.ord == 3).unwrap().attempts += 1;
                }
                Record::Parked { ord, why } => {
                    assert_eq!(*ord, 3);
                    assert!(why.contains("parked after 4 attempts"), "{why}");
                    parked = Some(round);
                }
                _ => {}
            }
        }
        if parked.is_some() {
            break;
        }
        // Backed off alone: not planned again before its time.
        let wake = s.next_wake().expect("a wake-up for the backed-off one");
        assert!(s.plan(now, due.clone()).is_empty());
        now = wake;
        // A new card arrives meanwhile: evidence that the receiver works.
        due.push(pending(100 + round..101 + round).remove(0));
    }
    assert_eq!(parked, Some(3), "parked at the fourth failed attempt");
}

#[test]
fn a_receiver_down_for_everyone_pauses_the_sink_and_counts_no_attempt() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let mut now = Instant::now();
    let due = pending(1..20);
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let requests = s.plan(now, due.clone());
        assert!(!requests.is_empty());
        let o = s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &status(503)));
        assert!(
            o.records
                .iter()
                .all(|r| matches!(r, Record::SinkError { .. })),
            "no delivery is charged an attempt: {:?}",
            o.records
        );
        let t = waited(&s, now).expect("paused");
        pauses.push(t - now);
        now = t;
    }
    // The pause grows (jitter drawn at 0: half the ceiling) up to the cap.
    assert_eq!(pauses[0], SEC / 2);
    assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(*pauses.last().unwrap(), 30 * SEC);
    // Back: everything goes, and the sink's error is cleared.
    let requests = s.plan(now, due.clone());
    let o = s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &ok()));
    assert_eq!(delivered(&o).len(), 8);
    assert!(o.up);
    assert!(o.records.contains(&Record::SinkError { why: None }));
}

#[test]
fn a_round_stops_after_a_few_failures_or_an_error_of_the_endpoint() {
    let s = Scheduler::new(limits(false), SinkState::default());
    let (e500, e404, fine) = (status(500), status(404), ok());
    assert!(s.keep_sending(&[&e500, &e500]));
    assert!(!s.keep_sending(&[&e500, &e500, &e500]));
    assert!(s.keep_sending(&[&fine, &e500, &e500, &e500]));
    assert!(!s.keep_sending(&[&fine, &e404]));
}

#[test]
fn endpoint_errors_pause_the_sink_and_dead_letter_nothing() {
    for code in [301, 401, 403, 404, 429] {
        let mut s = Scheduler::new(limits(false), SinkState::default());
        let now = Instant::now();
        let requests = s.plan(now, pending(1..4));
        let o = s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &status(code)));
        assert!(
            !o.records
                .iter()
                .any(|r| matches!(r, Record::Dead { .. } | Record::Failed { .. })),
            "{code}: {:?}",
            o.records
        );
        assert!(o.paused.as_ref().is_some_and(|p| p.0.is_some()), "{code}");
        assert!(matches!(s.blocked(now), Some(Blocked::Until(_))), "{code}");
    }
    // A stale timestamp is the kiosk's clock, not the event.
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let stale = read(
        &Answer::Status {
            code: 400,
            retry_after: None,
            detail: "timestamp outside tolerance".into(),
        },
        Receiver::Webhook,
    );
    let requests = s.plan(now, pending(1..4));
    let o = s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &stale));
    assert!(o
        .records
        .iter()
        .all(|r| matches!(r, Record::SinkError { .. })));
}

#[test]
fn gone_disables_the_sink_until_an_operator_enables_it() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let requests = s.plan(now, pending(1..4));
    let o = s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &status(410)));
    assert!(o
        .records
        .iter()
        .any(|r| matches!(r, Record::Disabled { .. })));
    assert_eq!(s.blocked(now + 3600 * SEC), Some(Blocked::Disabled));
    // Still disabled in the store: a nudge does not enable it.
    s.nudge(SinkState {
        error: Some("gone".into()),
        disabled: Some("gone".into()),
    });
    assert_eq!(s.blocked(now), Some(Blocked::Disabled));
    s.nudge(SinkState::default());
    assert_eq!(s.blocked(now), None);
}

#[test]
fn a_refusal_is_a_dead_letter_only_when_the_receiver_takes_others() {
    // Alone and unproven: whose fault is unknown; the sink pauses.
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let mut now = Instant::now();
    let requests = s.plan(now, pending(1..2));
    let o = s.judge(now, 0, 0.0, answer(requests, &[1], &status(422), &ok()));
    assert!(!o.records.iter().any(|r| matches!(r, Record::Dead { .. })));
    assert!(o.paused.as_ref().is_some_and(|p| p.0.is_none()));
    let t = waited(&s, now).expect("the suspect waits");
    assert!(
        s.blocked(now).is_none(),
        "only the suspect waits, not the sink"
    );
    now = t;
    // Next round it goes apart, beside a newcomer that goes through.
    let requests = s.plan(now, pending(1..3));
    assert_eq!(ords(&requests), [vec![2], vec![1]]);
    assert!(requests[1].suspect);
    let o = s.judge(now, 0, 0.0, answer(requests, &[1], &status(422), &ok()));
    assert_eq!(delivered(&o), [2]);
    assert!(o
        .records
        .iter()
        .any(|r| matches!(r, Record::Dead { ord: 1, .. })));
}

#[test]
fn a_bad_event_in_a_central_base_batch_is_found_by_halving() {
    let mut s = Scheduler::new(limits(true), SinkState::default());
    let mut now = Instant::now();
    let mut due = pending(0..200);
    let poison = 137;
    let mut requests_sent = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "never isolated");
        if let Some(t) = waited(&s, now) {
            now = t;
        }
        let requests = s.plan(now, due.clone());
        requests_sent += requests.len();
        let o = s.judge(
            now,
            0,
            0.5,
            answer(requests, &[poison], &status(400), &ok()),
        );
        due.retain(|p| !delivered(&o).contains(&p.ord));
        if o.records
            .iter()
            .any(|r| matches!(r, Record::Dead { ord, .. } if *ord == poison))
        {
            break;
        }
    }
    assert_eq!(due.iter().map(|p| p.ord).collect::<Vec<_>>(), [poison]);
    assert!(rounds <= 10, "{rounds} rounds");
    assert!(requests_sent <= 20, "{requests_sent} requests");
}

#[test]
fn a_batch_refused_as_a_whole_is_an_endpoint_matter_and_nothing_dies() {
    // Every event refused (a misconfigured receiver): halving goes on with
    // pauses, and no delivery is dead-lettered without evidence.
    let mut s = Scheduler::new(limits(true), SinkState::default());
    let mut now = Instant::now();
    let due = pending(0..200);
    for _ in 0..12 {
        if let Some(t) = waited(&s, now) {
            now = t;
        }
        let requests = s.plan(now, due.clone());
        let o = s.judge(now, 0, 0.5, answer(requests, &[], &ok(), &status(400)));
        assert!(
            !o.records.iter().any(|r| matches!(r, Record::Dead { .. })),
            "{:?}",
            o.records
        );
    }
}

#[test]
fn proof_of_a_working_receiver_serves_once() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let requests = s.plan(now, pending(1..3));
    s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &ok()));
    // One failure alone after a success: the event's.
    let requests = s.plan(now, pending(3..4));
    let o = s.judge(now, 0, 0.0, answer(requests, &[3], &status(500), &ok()));
    assert!(o
        .records
        .iter()
        .any(|r| matches!(r, Record::Failed { ord: 3, .. })));
    assert!(s.blocked(now).is_none());
    // The next lone failure is not: it waits as a suspect, no attempt
    // counted.
    let requests = s.plan(now, pending(4..5));
    let o = s.judge(now, 0, 0.0, answer(requests, &[4], &status(500), &ok()));
    assert!(!o.records.iter().any(|r| matches!(r, Record::Failed { .. })));
    assert!(waited(&s, now).is_some());
}

#[test]
fn an_old_delivery_is_parked_at_its_first_lone_failure_past_max_age() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let mut due = pending(1..3);
    due[0].age = 7200 * SEC;
    let requests = s.plan(now, due);
    let o = s.judge(now, 0, 0.0, answer(requests, &[1], &status(502), &ok()));
    assert!(o
        .records
        .iter()
        .any(|r| matches!(r, Record::Parked { ord: 1, .. })));
}

#[test]
fn a_nudge_sends_at_once_past_pauses_and_back_offs() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let requests = s.plan(now, pending(1..4));
    s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &status(503)));
    assert!(waited(&s, now).is_some());
    assert!(s.plan(now, pending(1..4)).is_empty(), "the suspects wait");
    s.nudge(SinkState::default());
    assert!(waited(&s, now).is_none());
    assert_eq!(s.plan(now, pending(1..4)).len(), 3);
}

#[test]
fn unrecorded_outcomes_are_kept_and_recorded_first_after_a_growing_pause() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let records = vec![Record::Delivered { ord: 1 }];
    let first = s.not_recorded(now, 0.0, records.clone());
    assert!(matches!(s.blocked(now), Some(Blocked::Until(_))));
    let kept = s.take_unrecorded();
    let again = s.not_recorded(now + first, 0.0, kept);
    assert!(again > first);
    assert_eq!(s.take_unrecorded(), records);
    s.recorded();
    assert!(s.blocked(now + first + again).is_none());
}

#[test]
fn the_sink_error_is_written_on_change_only() {
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let mut now = Instant::now();
    let mut errors = 0;
    for _ in 0..3 {
        let requests = s.plan(now, pending(1..3));
        let o = s.judge(now, 0, 0.0, answer(requests, &[], &ok(), &status(404)));
        errors += o
            .records
            .iter()
            .filter(|r| matches!(r, Record::SinkError { why: Some(_) }))
            .count();
        if let Some(t) = waited(&s, now) {
            now = t;
        }
    }
    assert_eq!(errors, 1);
}

#[test]
fn fresh_deliveries_go_while_suspects_wait_and_their_success_is_the_evidence() {
    // A poison event alone on a quiet kiosk: whose fault is unknown.
    let mut s = Scheduler::new(limits(false), SinkState::default());
    let now = Instant::now();
    let requests = s.plan(now, pending(1..2));
    s.judge(now, 0, 0.0, answer(requests, &[1], &status(500), &ok()));
    assert!(s.blocked(now).is_none(), "the sink is not stopped");
    // A new card's status change goes at once, without the suspect.
    let requests = s.plan(now, pending(1..3));
    assert_eq!(ords(&requests), [vec![2]]);
    let o = s.judge(now, 0, 0.0, answer(requests, &[1], &status(500), &ok()));
    assert_eq!(delivered(&o), [2]);
    // It went through: the suspect goes now, and its failure is its own.
    let requests = s.plan(now, pending(1..2));
    assert_eq!(ords(&requests), [vec![1]]);
    let o = s.judge(now, 0, 0.0, answer(requests, &[1], &status(500), &ok()));
    assert!(o
        .records
        .iter()
        .any(|r| matches!(r, Record::Failed { ord: 1, .. })));
}

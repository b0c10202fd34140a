use super::*;

const MS: u64 = 1_000_000;

fn streamed(intended: u64, sent: u64, first: u64, end: u64, tokens: u64) -> Outcome {
    let gap = if tokens > 1 {
        (end - first) / (tokens - 1)
    } else {
        0
    };
    Outcome {
        intended_ns: intended,
        sent_ns: sent,
        head_ns: Some(first),
        end_ns: end,
        error: None,
        stream: Some(Tally {
            first_content_ns: Some(first),
            last_content_ns: Some(end),
            content_events: tokens,
            reported_tokens: Some(tokens),
            itl_ns: vec![gap; tokens.saturating_sub(1) as usize],
            done: true,
            ..Default::default()
        }),
        json_tokens: None,
    }
}

#[test]
fn a_stalled_server_counts_from_the_intended_start() {
    let mut s = Stats::default();
    // Sent on time; the server sat on it for 500 ms.
    s.record(&streamed(0, 0, 500 * MS, 600 * MS, 11));
    assert_eq!(s.ttft.max(), s.ttft.highest_equivalent(500_000));
    assert_eq!(s.lag.max(), 0);
    assert_eq!(s.tpot.max(), s.tpot.highest_equivalent(10_000));
    assert_eq!(s.itl.len(), 10);
}

#[test]
fn a_late_tester_cannot_hide_the_delay() {
    let mut s = Stats::default();
    // Meant to start at 0, sent at 300 ms (the tester was behind), served in 10 ms.
    s.record(&streamed(0, 300 * MS, 310 * MS, 320 * MS, 2));
    assert_eq!(s.ttfb.max(), s.ttfb.highest_equivalent(310_000));
    assert_eq!(s.e2e.max(), s.e2e.highest_equivalent(320_000));
    assert_eq!(s.lag.max(), s.lag.highest_equivalent(300_000));
}

#[test]
fn an_early_send_counts_from_the_send() {
    let o = streamed(100_000, 80_000, 180_000, 180_000, 1);
    assert_eq!((o.origin_ns(), o.lag_ns()), (80_000, 0));
}

/// A fake-clock replay of coordinated omission: one connection, a request
/// meant every 10 ms, a server that answers in 1 ms but stalls once for
/// 500 ms. The requests queued behind the stall are late by up to ~490 ms;
/// measured from their intended start they are slow, which they were for
/// any user arriving on that schedule. Measured from the send they look fast.
#[test]
fn coordinated_omission_is_visible() {
    let (mut corrected, mut naive) = (Stats::default(), Stats::default());
    let mut free_at = 0; // when the single connection is next free
    for i in 0..100u64 {
        let intended = i * 10 * MS;
        let sent = intended.max(free_at);
        let service = if i == 10 { 500 * MS } else { MS };
        let end = sent + service;
        free_at = end;
        corrected.record(&streamed(intended, sent, end, end, 1));
        naive.record(&streamed(sent, sent, end, end, 1));
    }
    // Requests 10..65 waited: 500 ms down to 5 ms; the rest took 1 ms.
    assert!(
        corrected.e2e.value_at_quantile(0.5) > 10_000,
        "p50 {}",
        corrected.e2e.value_at_quantile(0.5)
    );
    assert!(corrected.e2e.value_at_quantile(0.9) > 300_000);
    assert!(naive.e2e.value_at_quantile(0.5) < 2_000);
    assert!(corrected.lag.max() > 400_000);
}

#[test]
fn errors_are_counted_not_timed() {
    let mut s = Stats::default();
    let mut o = streamed(0, 0, MS, 2 * MS, 3);
    o.error = Some(ErrorKind::Status(429));
    s.record(&o);
    o.error = Some(ErrorKind::Truncated);
    if let Some(t) = o.stream.as_mut() {
        t.done = false;
    }
    s.record(&o);
    s.overload();
    assert_eq!((s.sent, s.ok, s.errors_total()), (3, 0, 3));
    assert_eq!(s.errors.get("status_429"), Some(&1));
    assert_eq!(s.errors.get("truncated"), Some(&1));
    assert_eq!(s.errors.get("overload"), Some(&1));
    assert_eq!(s.completed_streams, 1);
    assert_eq!((s.e2e.len(), s.lag.len()), (0, 2));
}

#[test]
fn merge_adds_everything() {
    let (mut a, mut b) = (Stats::default(), Stats::default());
    a.record(&streamed(0, 0, MS, 5 * MS, 5));
    b.record(&streamed(0, 0, 2 * MS, 9 * MS, 8));
    b.error(ErrorKind::Timeout);
    a.merge(&b);
    assert_eq!((a.sent, a.ok, a.output_tokens, a.tokens_counted), (2, 2, 13, 13));
    assert_eq!(a.errors.get("timeout"), Some(&1));
    assert_eq!(a.ttft.len(), 2);
    assert_eq!(a.itl.len(), 4 + 7);
    assert_eq!(a.last_end_ns, 9 * MS);
}

#[test]
fn non_streamed_usage() {
    let mut s = Stats::default();
    s.record(&Outcome {
        head_ns: Some(MS),
        end_ns: 3 * MS,
        json_tokens: Some(9),
        ..Default::default()
    });
    assert_eq!(
        (s.output_tokens, s.tokens_reported, s.ttft.len(), s.ttfb.len()),
        (9, 9, 0, 1)
    );
}

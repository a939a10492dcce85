//! Batched offset commits keep at-least-once, against a real broker
//! (`KAFKA_BOOTSTRAP`, started by `cargo xtask test`).
//!
//! Offsets are stored per handled record and committed every N records or
//! T ms, on revoke and on close. These tests turn the count and the timer
//! off (or down) so that what they prove rests on one mechanism each: close
//! commits everything handled, a crash loses only what was stored after the
//! last commit (and those records come back), and a rebalance commits what
//! the first member handled before the second member reads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain_core::bus::contract::unique;
use domain_core::bus::partition::partition_for_key;
use domain_core::bus::{Delivery, EventBus, Record, Subscription, TopicSpec};
use kafka_bus::{KafkaBus, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// How long a test waits for records before it fails.
const WAIT: Duration = Duration::from_secs(60);
/// Tells the re-executed test binary to act as the crashing consumer.
const CHILD_ENV: &str = "KAFKA_BUS_CRASH_CHILD";
/// The line the child prints once it handled its records.
const HANDLED: &str = "crash_child: handled 250";

fn config() -> KafkaConfig {
    KafkaConfig::from_env().unwrap_or_else(|e| panic!("{e}"))
}

/// Commits only on revoke and close: no count, no timer.
fn close_only(mut c: KafkaConfig) -> KafkaConfig {
    c.commit_every = usize::MAX;
    c.commit_interval = Duration::ZERO;
    c
}

fn bus(c: KafkaConfig) -> KafkaBus {
    KafkaBus::connect(c).unwrap_or_else(|e| panic!("{e}"))
}

/// Records keyed `k{i}` for `i` in `keys`, published `chunk` at a time;
/// returns how many landed in each partition (keys go to their murmur2
/// partition).
async fn publish(
    bus: &KafkaBus,
    topic: &str,
    partitions: i32,
    keys: std::ops::Range<usize>,
    chunk: usize,
) -> BTreeMap<i32, i64> {
    let records: Vec<_> = keys
        .map(|i| Record {
            key: Some(format!("k{i}").into_bytes()),
            headers: vec![],
            value: Some(format!("{{\"n\":{i}}}").into_bytes()),
        })
        .collect();
    let mut per_partition = BTreeMap::new();
    for r in &records {
        let p = partition_for_key(r.key.as_deref().unwrap_or_default(), partitions as u32);
        *per_partition.entry(p).or_insert(0) += 1;
    }
    for batch in records.chunks(chunk) {
        bus.publish_records(topic, batch.to_vec()).await.expect("publish");
    }
    per_partition
}

/// Reads until `n` deliveries arrived, failing after [`WAIT`].
async fn take(sub: &mut dyn Subscription, n: usize) -> Vec<Delivery> {
    let out = take_within(sub, n).await;
    assert_eq!(out.len(), n, "only {} of {n} records arrived", out.len());
    out
}

/// Reads until `n` deliveries arrived or [`WAIT`] passed.
async fn take_within(sub: &mut dyn Subscription, n: usize) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::with_capacity(n);
    while out.len() < n && tokio::time::Instant::now() < deadline {
        if let Some(d) = sub.next(Duration::from_secs(1)).await.expect("next") {
            out.push(d);
        }
    }
    out
}

/// The group's committed offset of each partition of `topic`.
fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = config().consumer(group).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// Each partition's (low, high) watermark: what the log really holds.
fn watermarks(topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = config().consumer("watermarks").create().expect("consumer");
    (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks")).collect()
}

/// Fails if anything more arrives within `quiet`.
async fn assert_nothing_more(sub: &mut dyn Subscription, quiet: Duration) {
    if let Some(d) = sub.next(quiet).await.expect("next") {
        panic!("unexpected delivery: partition {} offset {}", d.partition, d.offset);
    }
}

fn offsets(ds: &[Delivery]) -> BTreeSet<(i32, i64)> {
    ds.iter().map(|d| (d.partition, d.offset)).collect()
}

/// (a) After handling K records and `close()`, the next member of the
/// group starts exactly after them in every partition: nothing lost,
/// nothing redelivered. Checked with the default batching (500 records /
/// 100 ms) and with the count and timer off, so that only `close` commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_every_handled_record_and_the_next_member_starts_right_after() {
    for (name, c) in [("defaults", config()), ("close only", close_only(config()))] {
        assert!(c.batched_commits(), "{name}: batched");
        let bus = bus(c);
        let topic = unique("batched-close");
        let group = unique("g");
        bus.create_topics(&[TopicSpec::new(&topic, 3)]).await.expect("create topic");
        let total = 1_200;
        let handled_count = 777;
        let per_partition = publish(&bus, &topic, 3, 0..total, total).await;

        let mut first = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let got = take(first.as_mut(), handled_count).await;
        let mut handled_end: BTreeMap<i32, i64> = BTreeMap::new();
        for d in &got {
            // Per partition, the handled records are a prefix.
            let end = handled_end.entry(d.partition).or_insert(0);
            assert_eq!(d.offset, *end, "{name}: partition {} in order", d.partition);
            *end += 1;
            first.commit(d).await.expect("commit");
        }
        first.close().await.expect("close");

        let mut second = bus.subscribe(&group, &[&topic]).await.expect("resubscribe");
        let rest = take_within(second.as_mut(), total - handled_count).await;
        let expected: BTreeSet<(i32, i64)> = per_partition
            .iter()
            .flat_map(|(&p, &n)| (handled_end.get(&p).copied().unwrap_or(0)..n).map(move |o| (p, o)))
            .collect();
        let committed = committed_offsets(&group, &topic, 3);
        let got = offsets(&rest);
        let watermarks = watermarks(&topic, 3);
        let missing: Vec<_> = expected.difference(&got).collect();
        assert_eq!(
            got, expected,
            "{name}: exactly the unhandled records, each once; topic {topic}, handled up to {handled_end:?}, \
             published {per_partition:?}, committed {committed:?}, in the log {watermarks:?}, missing {missing:?}"
        );
        for (p, end) in &handled_end {
            let first_again = rest.iter().find(|d| d.partition == *p).map(|d| d.offset);
            assert!(
                first_again.is_none_or(|o| o == *end),
                "{name}: partition {p} resumes at {end}, not {first_again:?}"
            );
        }
        assert_nothing_more(second.as_mut(), Duration::from_secs(2)).await;
        second.close().await.expect("close");
    }
}

/// The consumer process of [`a_crashed_member_loses_only_what_it_stored_since_the_last_commit`]
/// (that test, run again with [`CHILD_ENV`] set): handles and commits 250
/// records with a commit every 100, reports, then waits to be killed. After
/// the 200th it waits until the asynchronous commit asked for there is
/// visible, so it carries offset 200 and not a later stored one.
async fn crash_child(args: String) {
    let (topic, group) = args.split_once(' ').expect("topic and group");
    let mut c = close_only(config());
    c.commit_every = 100;
    c.session_timeout = Duration::from_secs(6);
    let bus = bus(c);
    let mut sub = bus.subscribe(group, &[topic]).await.expect("subscribe");
    for d in take(sub.as_mut(), 250).await {
        sub.commit(&d).await.expect("commit");
        if d.offset == 199 {
            let (group, topic) = (group.to_owned(), topic.to_owned());
            let committed = tokio::task::spawn_blocking(move || wait_for_commit(&group, &topic, 200)).await;
            assert_eq!(committed.expect("join"), Some(200), "the batch commit at 200 landed");
        }
    }
    // The harness may have printed "test ... " on this line.
    println!("\n{HANDLED}");
    let killed = tokio::time::timeout(WAIT * 4, std::future::pending::<()>()).await;
    assert!(killed.is_ok(), "crash_child was not killed");
}

/// Polls the group's committed offset of partition 0 of `topic` until it
/// is `want`; returns the last one seen.
fn wait_for_commit(group: &str, topic: &str, want: i64) -> Option<i64> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let committed = committed_offsets(group, topic, 1)[0];
        if committed == Some(want) || std::time::Instant::now() > deadline {
            return committed;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (b) Records handled (offsets stored) but not yet committed when the
/// member dies are delivered again to the next member, never skipped, and
/// only those: the redelivery is bounded by the commit batch.
///
/// A member dropped in-process still leaves the group gracefully and
/// commits what it stored (the contract's `uncommitted_records_are_redelivered`
/// relies on that), so the crash is real: a child process killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_loses_only_what_it_stored_since_the_last_commit() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        return crash_child(args).await;
    }
    let bus = bus(config());
    let topic = unique("batched-crash");
    let group = unique("g");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    publish(&bus, &topic, 1, 0..300, 300).await;

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_crashed_member_loses_only_what_it_stored_since_the_last_commit",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{topic} {group}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the crashing consumer");
    let stdout = child.stdout.take().expect("piped stdout");
    let reported = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line == HANDLED)
    });
    let reported = tokio::time::timeout(WAIT, reported).await;
    if !matches!(reported, Ok(Ok(true))) {
        child.kill().ok();
        panic!("the child did not report handling 250 records");
    }
    // The commit asked for at the 200th record is asynchronous: wait until
    // it landed, so the kill falls between two commits.
    let (g, t) = (group.clone(), topic.clone());
    let committed = tokio::task::spawn_blocking(move || wait_for_commit(&g, &t, 200)).await.expect("join");
    if committed != Some(200) {
        child.kill().ok();
        panic!("the commit at 200 never landed (committed: {committed:?})");
    }
    child.kill().expect("SIGKILL the consumer");
    child.wait().expect("reap the consumer");

    // The dead member's partition moves once its session times out (6 s).
    let mut next = bus.subscribe(&group, &[&topic]).await.expect("resubscribe");
    let again = take(next.as_mut(), 100).await;
    assert_eq!(
        again.iter().map(|d| d.offset).collect::<Vec<_>>(),
        (200..300).collect::<Vec<_>>(),
        "the 50 handled but uncommitted records come back, then the 50 never handled; nothing before 200"
    );
    assert_nothing_more(next.as_mut(), Duration::from_secs(2)).await;
    next.close().await.expect("close");
}

/// While a member runs, what it handled is committed within
/// `commit_interval` even though no batch filled up and nothing closed or
/// rebalanced: librdkafka's auto-commit timer commits the stored offsets,
/// also while the member is busy and not polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_commits_what_was_handled_while_the_member_runs() {
    let mut c = config();
    c.commit_every = usize::MAX;
    c.commit_interval = Duration::from_millis(100);
    let bus = bus(c);
    let topic = unique("batched-timer");
    let group = unique("g");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    publish(&bus, &topic, 1, 0..100, 100).await;
    let mut sub = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
    let got = take(sub.as_mut(), 100).await;
    for (want, upto) in [(31, 31), (60, 60)] {
        for d in &got[..upto] {
            sub.commit(d).await.expect("commit");
        }
        let (g, t) = (group.clone(), topic.clone());
        let committed = tokio::task::spawn_blocking(move || wait_for_commit(&g, &t, want)).await.expect("join");
        assert_eq!(committed, Some(want), "committed by the timer: no batch, no close, no rebalance");
    }
    sub.close().await.expect("close");
}

/// (c) When a second member joins while the first is handling, the first
/// member's revoked partitions are committed at exactly what it handled
/// before the second reads them: nothing handled is delivered again,
/// nothing is skipped. The first member's count and timer are off: only
/// the revoke can have committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_commits_what_the_first_member_handled() {
    // Small fetches, so the first member's records interleave partitions.
    let bus = bus(close_only(config()).set("max.partition.fetch.bytes", "2048"));
    let topic = unique("batched-rebalance");
    let group = unique("g");
    let partitions = 4;
    bus.create_topics(&[TopicSpec::new(&topic, partitions as u32)]).await.expect("create topic");
    let (first_wave, total) = (40, 1_200);
    let mut per_partition = publish(&bus, &topic, partitions, 0..first_wave, first_wave).await;
    assert_eq!(per_partition.len(), 4, "every partition has records");

    // The first member handles every record it gets, 10 ms each.
    let mut first = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Arc<Mutex<BTreeMap<i32, i64>>> = Arc::default();
    let handling = tokio::spawn({
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        async move {
            let mut handled = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Some(d) = first.next(Duration::from_millis(100)).await.expect("first member next") {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    first.commit(&d).await.expect("commit");
                    handled.push((d.partition, d.offset));
                    *progress.lock().expect("progress").entry(d.partition).or_insert(0) += 1;
                }
            }
            (first, handled)
        }
    });
    // Once it has handled some records of every partition, many more
    // arrive, and while it works through them a second member joins.
    let handled_count = || progress.lock().expect("progress").values().sum::<i64>() as usize;
    let deadline = tokio::time::Instant::now() + WAIT;
    while progress.lock().expect("progress").len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the first member handled only {:?}", progress.lock());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (p, n) in publish(&bus, &topic, partitions, first_wave..total, 40).await {
        *per_partition.entry(p).or_insert(0) += n;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut second = bus.subscribe(&group, &[&topic]).await.expect("second member");
    let mut got: Vec<Delivery> = Vec::new();
    let mut quiet = 0;
    while quiet < 3 {
        assert!(tokio::time::Instant::now() < deadline, "second member got only {} records", got.len());
        match second.next(Duration::from_secs(1)).await.expect("next") {
            Some(d) => {
                got.push(d);
                quiet = 0;
            }
            None if got.is_empty() => {}
            None => quiet += 1,
        }
    }
    // The first member finishes the partitions it kept.
    while handled_count() + got.len() < total {
        assert!(tokio::time::Instant::now() < deadline, "the first member stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (first, handled) = handling.await.expect("first member task");

    let mut first_end: BTreeMap<i32, i64> = BTreeMap::new();
    for &(p, o) in &handled {
        let end = first_end.entry(p).or_insert(0);
        assert_eq!(o, *end, "partition {p}: the first member handles each record once, in order");
        *end += 1;
    }
    let mut second_got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for d in &got {
        second_got.entry(d.partition).or_default().push(d.offset);
    }
    assert!(!second_got.is_empty() && second_got.len() < 4, "the partitions were shared: {:?}", second_got.keys());
    for (p, offsets) in &second_got {
        let start = first_end.get(p).copied().unwrap_or(0);
        assert!(start > 0, "partition {p}: the first member had handled some before the rebalance ({first_end:?})");
        assert_eq!(
            offsets,
            &(start..per_partition[p]).collect::<Vec<_>>(),
            "partition {p}: the second member starts right after what the first handled and misses nothing"
        );
    }
    for (p, n) in &per_partition {
        if !second_got.contains_key(p) {
            assert_eq!(first_end.get(p), Some(n), "partition {p}: the first member kept it and handled it all");
        }
    }
    second.close().await.expect("close");
    first.close().await.expect("close");
}

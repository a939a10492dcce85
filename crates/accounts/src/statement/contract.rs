//! The suite every [`StatementReadModel`] adapter runs, through
//! `statement_contract_tests!`, and the pieces of the kill -9 tests.

use std::collections::HashMap;
use std::path::PathBuf;

use domain_core::{AggregateRoot, Currency, Envelope, Money};
use event_store::{RecordedText, StreamId};
use rust_decimal::Decimal;

use super::{LinePage, MemoryStatements, StatementReadModel};
use crate::{Account, AccountCommand, AccountEvent, AccountStatus, Cause, Error, TransferPurpose};

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        Self(std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7().simple())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cny(amount: &str) -> Money {
    Money::parse(amount, Currency::CNY).expect("amount")
}

fn dec(amount: &str) -> Decimal {
    amount.parse().expect("decimal")
}

/// A global log written by hand: positions from 1, events made by the
/// `Account` aggregate itself.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<RecordedText>,
    accounts: HashMap<String, AggregateRoot<Account>>,
}

impl Log {
    /// Runs `command` on the account and logs what it decided.
    pub(crate) fn run(&mut self, account_id: &str, command: AccountCommand) -> &mut Self {
        let root = self.accounts.entry(account_id.to_owned()).or_insert_with(|| AggregateRoot::new(account_id));
        root.execute(command).expect("the command is accepted");
        let envelopes = root.uncommitted_envelopes(None).expect("envelopes");
        root.mark_committed();
        for envelope in envelopes {
            self.push_raw(StreamId::new(format!("Account-{account_id}")).expect("stream"), envelope);
        }
        self
    }

    pub(crate) fn push_raw(&mut self, stream: StreamId, envelope: Envelope) -> &mut Self {
        let position = self.events.len() as u64 + 1;
        self.events.push(event_store::testkit::recorded_text(stream, position, envelope));
        self
    }

    /// `[from, to)` by position (1-based).
    pub(crate) fn range(&self, from: u64, to: u64) -> Vec<RecordedText> {
        self.events[(from - 1) as usize..(to - 1) as usize].to_vec()
    }

    pub(crate) fn next_position(&self) -> u64 {
        self.events.len() as u64 + 1
    }

    /// The version the account's next event gets.
    fn next_version(&self, account_id: &str) -> u64 {
        self.accounts.get(account_id).map_or(1, |a| a.version() + 1)
    }
}

/// The seed's story: 张三 opens account_001 with 1000, is paid 500 (工资),
/// takes out 200 and sends 300 to account_002, which is credited; then
/// account_002 is frozen. 7 events.
pub(crate) fn story() -> Log {
    let mut log = Log::default();
    let open = |holder: &str, initial: &str| AccountCommand::Open {
        account_holder: holder.into(),
        initial_balance: cny(initial),
    };
    log.run("account_001", open("张三", "1000"))
        .run("account_001", AccountCommand::Deposit { amount: cny("500"), description: "工资".into() })
        .run("account_001", AccountCommand::Withdraw { amount: cny("200"), description: "ATM".into() })
        .run("account_002", open("李四", "0"))
        .run(
            "account_001",
            AccountCommand::Transfer {
                transfer_id: "t1".into(),
                target_account_id: "account_002".into(),
                amount: cny("300"),
                description: "房租".into(),
            },
        )
        .run(
            "account_002",
            AccountCommand::ReceiveTransfer {
                transfer_id: "t1".into(),
                source_account_id: "account_001".into(),
                cause: Cause { account_id: "account_001".into(), version: 4 },
                amount: cny("300"),
                description: "房租".into(),
                purpose: TransferPurpose::Transfer,
            },
        )
        .run("account_002", AccountCommand::Freeze { reason: "review".into() });
    log
}

async fn lines_of(model: &dyn StatementReadModel, id: &str) -> Vec<(String, Option<Decimal>, Decimal, String)> {
    let statement = model.statement(id, LinePage::first()).await.expect("query").expect("the account is known");
    statement.lines.into_iter().map(|l| (l.event, l.change, l.balance, l.detail)).collect()
}

pub(crate) async fn lines_follow_the_seed_story(model: &dyn StatementReadModel) {
    let log = story();
    model.apply(&log.events, log.next_position()).await.expect("apply");
    assert_eq!(model.checkpoint().await.expect("checkpoint"), 8);
    let statement = model.statement("account_001", LinePage::first()).await.expect("query").expect("known");
    let h = &statement.header;
    assert_eq!(
        (h.holder.as_str(), h.currency, h.status, h.version),
        ("张三", Some(Currency::CNY), AccountStatus::Active, 4)
    );
    assert_eq!(h.balance, dec("1000.00"));
    let line = |event: &str, change: Option<&str>, balance: &str, detail: &str| {
        (event.to_owned(), change.map(dec), dec(balance), detail.to_owned())
    };
    assert_eq!(
        lines_of(model, "account_001").await,
        [
            line("AccountCreated", Some("1000.00"), "1000.00", "opened for 张三"),
            line("MoneyDeposited", Some("500.00"), "1500.00", "工资"),
            line("MoneyWithdrawn", Some("-200.00"), "1300.00", "ATM"),
            line("MoneyTransferredOut", Some("-300.00"), "1000.00", "to account_002: 房租"),
        ]
    );
    assert_eq!(
        lines_of(model, "account_002").await,
        [
            line("AccountCreated", Some("0.00"), "0.00", "opened for 李四"),
            line("MoneyTransferredIn", Some("300.00"), "300.00", "from account_001: 房租"),
            line("AccountFrozen", None, "300.00", "review"),
        ]
    );
    let second = model.statement("account_002", LinePage::first()).await.expect("query").expect("known");
    assert_eq!(second.header.status, AccountStatus::Frozen);
    let positions: Vec<u64> = statement.lines.iter().map(|l| l.position).collect();
    assert_eq!(positions, [1, 2, 3, 5], "each line carries its global-log position");
    assert!(statement.lines.iter().all(|l| l.at >= h.first_at && l.at <= h.updated_at));
    assert_eq!(model.statement("account_404", LinePage::first()).await.expect("query"), None);
}

pub(crate) async fn a_page_holds_the_lines_it_names(model: &dyn StatementReadModel) {
    let mut log = Log::default();
    log.run("account_001", AccountCommand::Open { account_holder: "张三".into(), initial_balance: cny("0") });
    for n in 1..=30 {
        log.run("account_001", AccountCommand::Deposit { amount: cny("1"), description: format!("d{n}") });
    }
    model.apply(&log.events, log.next_position()).await.expect("apply");
    let page =
        model.statement("account_001", LinePage::new(11, 5).expect("page")).await.expect("query").expect("known");
    assert_eq!(page.lines.iter().map(|l| l.version).collect::<Vec<_>>(), [11, 12, 13, 14, 15]);
    assert_eq!(page.lines[0].balance, dec("10.00"), "version 11 is the tenth deposit");
    assert_eq!(page.header.version, 31);
    let tail =
        model.statement("account_001", LinePage::new(29, 100).expect("page")).await.expect("query").expect("known");
    assert_eq!(tail.lines.len(), 3);
    let past =
        model.statement("account_001", LinePage::new(40, 10).expect("page")).await.expect("query").expect("known");
    assert!(past.lines.is_empty(), "a page past the last line is empty, the header still there");
}

pub(crate) async fn batches_one_by_one_equal_one_batch(model: &dyn StatementReadModel) {
    let log = story();
    for p in 1..log.next_position() {
        model.apply(&log.range(p, p + 1), p + 1).await.expect("apply one");
    }
    let whole = MemoryStatements::new();
    whole.apply(&log.events, log.next_position()).await.expect("apply all");
    for id in ["account_001", "account_002"] {
        assert_eq!(
            model.statement(id, LinePage::first()).await.expect("query"),
            whole.statement(id, LinePage::first()).await.expect("query"),
            "{id}"
        );
    }
}

pub(crate) async fn a_batch_applied_twice_counts_once(model: &dyn StatementReadModel) {
    let log = story();
    model.apply(&log.range(1, 5), 5).await.expect("first part");
    // Overlapping and repeated batches: only what the checkpoint lacks is new.
    model.apply(&log.range(3, 6), 6).await.expect("overlap");
    model.apply(&log.events, log.next_position()).await.expect("all again");
    model.apply(&log.range(1, 3), 3).await.expect("an old batch is a no-op");
    assert_eq!(model.checkpoint().await.expect("checkpoint"), 8);
    let statement = model.statement("account_001", LinePage::first()).await.expect("query").expect("known");
    assert_eq!(statement.lines.len(), 4);
    assert_eq!(statement.header.balance, dec("1000.00"));
}

pub(crate) async fn an_event_that_disagrees_changes_nothing(model: &dyn StatementReadModel) {
    let mut log = story();
    model.apply(&log.range(1, 4), 4).await.expect("the first three");
    // A deposit claiming the balance was 999.00: the statement says 1300.00.
    let version = log.next_version("account_001");
    let wrong = AccountEvent::MoneyDeposited {
        amount: cny("1"),
        description: "?".into(),
        old_balance: dec("999.00"),
        new_balance: dec("1000.00"),
    };
    let envelope = Envelope::new("account_001", version, &wrong).expect("envelope");
    let mut batch = log.range(4, log.next_position());
    log.push_raw(StreamId::new("Account-account_001").expect("stream"), envelope);
    batch.push(log.events.last().expect("pushed").clone());
    let err = model.apply(&batch, log.next_position()).await.expect_err("refused");
    assert!(
        matches!(&err, Error::Inconsistent { position: 8, account_id, .. } if account_id == "account_001"),
        "{err}"
    );
    assert!(err.to_string().contains("999.00"), "{err}");
    assert_eq!(model.checkpoint().await.expect("checkpoint"), 4, "the whole batch was refused");
    let statement = model.statement("account_001", LinePage::first()).await.expect("query").expect("known");
    assert_eq!((statement.lines.len(), statement.header.balance), (3, dec("1300.00")));
    assert_eq!(model.statement("account_002", LinePage::first()).await.expect("query"), None);
}

pub(crate) async fn gaps_are_refused(model: &dyn StatementReadModel) {
    let log = story();
    model.apply(&log.range(1, 3), 3).await.expect("apply");
    let err = model.apply(&log.range(4, 6), 6).await.expect_err("skips position 3");
    assert!(matches!(err, Error::Gap(event_store::projection_rules::Gap { expected: 3, got: 4 })), "{err}");
    assert_eq!(model.checkpoint().await.expect("checkpoint"), 3);
}

pub(crate) async fn foreign_events_move_only_the_checkpoint(model: &dyn StatementReadModel) {
    let mut log = Log::default();
    let ty: domain_core::EventType = "orders.OrderCreated.v1".parse().expect("type");
    let foreign = Envelope::raw("orders", ty, "order_001", 1, serde_json::json!({}));
    log.push_raw(StreamId::new("Order-order_001").expect("stream"), foreign);
    log.run("account_001", AccountCommand::Open { account_holder: "张三".into(), initial_balance: cny("5") });
    model.apply(&log.events, log.next_position()).await.expect("apply");
    assert_eq!(model.checkpoint().await.expect("checkpoint"), 3);
    let statement = model.statement("account_001", LinePage::first()).await.expect("query").expect("known");
    assert_eq!(statement.lines.iter().map(|l| l.position).collect::<Vec<_>>(), [2]);
}

/// The child side of a kill -9 test: applies one deposit per batch until
/// it is killed, printing `applied <next position>` after each.
pub(crate) async fn apply_until_killed(model: &dyn StatementReadModel) {
    let mut log = Log::default();
    let mut next = model.checkpoint().await.expect("checkpoint");
    for n in 0u64.. {
        push_crash_event(&mut log, n);
        if log.next_position() > next {
            model.apply(&log.range(next, log.next_position()), log.next_position()).await.expect("apply");
            next = log.next_position();
            println!("applied {next}");
        }
    }
}

/// Event `n` of the crash log: account_crash opened with 0, then a
/// deposit of 1.00 per event.
fn push_crash_event(log: &mut Log, n: u64) {
    let command = match n {
        0 => AccountCommand::Open { account_holder: "张三".into(), initial_balance: cny("0") },
        n => AccountCommand::Deposit { amount: cny("1"), description: format!("d{n}") },
    };
    log.run("account_crash", command);
}

/// After a kill: the statement holds exactly what its checkpoint covers,
/// and equals a projection from scratch of the log up to the checkpoint
/// (times aside: the child stamped its events when it made them).
pub(crate) async fn assert_equals_a_rebuild_from_scratch(model: &dyn StatementReadModel) {
    let checkpoint = model.checkpoint().await.expect("checkpoint");
    assert!(checkpoint > 1, "the child made progress");
    let mut log = Log::default();
    for n in 0..checkpoint - 1 {
        push_crash_event(&mut log, n);
    }
    let scratch = MemoryStatements::new();
    scratch.apply(&log.events, log.next_position()).await.expect("from scratch");
    let page = LinePage::new(1, super::MAX_LINES).expect("page");
    let strip = |s: super::Statement| {
        (
            s.header.balance,
            s.header.version,
            s.lines.into_iter().map(|l| (l.version, l.position, l.balance)).collect::<Vec<_>>(),
        )
    };
    let after = strip(model.statement("account_crash", page).await.expect("query").expect("known"));
    assert_eq!(after.0, Decimal::from(checkpoint - 2), "one deposit of 1.00 per event after the opening");
    assert_eq!(after, strip(scratch.statement("account_crash", page).await.expect("query").expect("known")));
}

/// The parent side: runs `test` of this test binary again as a child with
/// `env` set (it then calls [`apply_until_killed`]), and SIGKILLs it once
/// it reported `more` applied batches.
pub(crate) fn kill_mid_run(test: &str, env: (&str, &str), more: u64) {
    use std::io::{BufRead, BufReader};
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut seen = 0;
    for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
        if line.contains("applied ") {
            seen += 1;
            if seen >= more {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(seen >= more, "the child died after {seen} batches instead of being killed");
}

/// The statement suite; `$make` gives `(guard, read_model)`.
macro_rules! statement_contract_tests {
    ($make:expr) => {
        $crate::statement::contract::statement_contract_tests!(@cases $make, [
            lines_follow_the_seed_story,
            a_page_holds_the_lines_it_names,
            batches_one_by_one_equal_one_batch,
            a_batch_applied_twice_counts_once,
            an_event_that_disagrees_changes_nothing,
            gaps_are_refused,
            foreign_events_move_only_the_checkpoint,
        ]);
    };
    (@cases $make:expr, [$($case:ident),* $(,)?]) => {
        mod statement_contract {
            #[allow(unused_imports)]
            use super::*;
            use $crate::statement::contract as c;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_guard, subject) = $make;
                    c::$case(&subject).await;
                }
            )*
        }
    };
}
pub(crate) use statement_contract_tests;

/// A rebuild of `serving` (fed from an in-memory store that two writers
/// keep appending to, while a reader keeps querying) switches over to a
/// copy equal to a rebuild from scratch, and no query in between sees a
/// statement with fewer lines than one it saw before, or a header that
/// disagrees with its lines.
pub(crate) async fn a_rebuild_under_appends_switches_to_an_equal_copy(
    serving: std::sync::Arc<super::ServingStatements>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use event_store::{EventStore, InMemoryEventStore};

    use super::Statements;
    use crate::Accounts;

    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let accounts = Accounts::new(Arc::clone(&store));
    for id in ["account_001", "account_002"] {
        accounts.open(id, "张三", cny("1000")).await.expect("open");
    }
    let deposit = |n: u32| AccountCommand::Deposit { amount: cny("1"), description: format!("d{n}") };
    for n in 0..200 {
        accounts.execute("account_001", deposit(n), None).await.expect("deposit");
    }
    let generation = serving.generation();
    let statements = Statements::new(Arc::clone(&store), serving.clone()).with_batch_size(16);
    statements.catch_up().await.expect("catch up");

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (accounts, done) = (accounts.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                accounts.execute("account_002", deposit(n), None).await.expect("deposit");
                n += 1;
            }
            n
        })
    };
    let reader = {
        let (serving, done) = (serving.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let page = LinePage::new(1, super::MAX_LINES).expect("page");
            let (mut seen, mut queries) = (0, 0u64);
            while !done.load(Ordering::Acquire) {
                let s = serving.statement("account_001", page).await.expect("query").expect("never missing");
                assert!(s.header.version >= seen, "went back from {seen} to {}", s.header.version);
                assert_eq!(s.lines.len() as u64, s.header.version, "a whole statement");
                seen = s.header.version;
                queries += 1;
                tokio::task::yield_now().await;
            }
            queries
        })
    };
    let rebuilt = statements.runner().rebuild().await.expect("rebuild");
    done.store(true, Ordering::Release);
    let appended = writer.await.expect("writer");
    let queries = reader.await.expect("reader");
    assert!(queries > 0 && appended > 0, "the reader ({queries}) and the writer ({appended}) raced the rebuild");
    assert_eq!(serving.generation(), generation + 1, "switched to the next generation");
    assert!(rebuilt.events >= 202, "{rebuilt:?}");

    statements.catch_up().await.expect("catch up after");
    let scratch = Statements::new(Arc::clone(&store), Arc::new(MemoryStatements::new()));
    let page = LinePage::new(1, super::MAX_LINES).expect("page");
    for id in ["account_001", "account_002"] {
        let ours = statements.statement(id, page).await.expect("statement");
        assert_eq!(ours, scratch.statement(id, page).await.expect("scratch"), "{id}");
    }
    let root = accounts.get_by_id("account_002").await.expect("load");
    assert_eq!(
        statements.statement("account_002", page).await.expect("statement").header.balance,
        root.state().balance
    );
}

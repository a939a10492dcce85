//! Given/when/then tests of the [`Account`] aggregate: every command and
//! every rule, with the exact events wherever they are determined, plus a
//! property test over random command sequences.

use domain_core::testkit::{AggregateTest, assert_survives_the_wire};
use domain_core::{AggregateRoot, Currency, Envelope, Money};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rust_decimal::Decimal;

use crate::account::{MAX_ACCOUNT_ID_LEN, validate_account_id};
use crate::*;

use AccountCommand as C;
use AccountEvent as E;

type Test = AggregateTest<Account>;

// ---------------------------------------------------------------- helpers

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

fn jpy_currency() -> Currency {
    "JPY".parse().expect("a currency code")
}

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::USD).expect("an amount")
}

fn cny(s: &str) -> Money {
    Money::parse(s, Currency::CNY).expect("an amount")
}

fn jpy(s: &str) -> Money {
    Money::parse(s, jpy_currency()).expect("an amount")
}

fn cause(account_id: &str, version: u64) -> Cause {
    Cause { account_id: account_id.to_owned(), version }
}

fn payment(order_id: &str) -> TransferPurpose {
    TransferPurpose::Payment { order_id: order_id.to_owned() }
}

fn refund(order_id: &str) -> TransferPurpose {
    TransferPurpose::Refund { order_id: order_id.to_owned() }
}

fn created(holder: &str, initial_balance: Money) -> AccountEvent {
    E::AccountCreated { account_holder: holder.to_owned(), initial_balance }
}

/// History of an active USD account of 张三 holding `balance`.
fn usd_account(balance: &str) -> Vec<AccountEvent> {
    vec![created("张三", usd(balance))]
}

fn frozen() -> AccountEvent {
    E::AccountFrozen { reason: "audit".into() }
}

/// History of a USD account that held `balance` and is frozen now.
fn frozen_usd_account(balance: &str) -> Vec<AccountEvent> {
    vec![created("张三", usd(balance)), frozen()]
}

/// History of a USD account that was opened empty and closed.
fn closed_usd_account() -> Vec<AccountEvent> {
    vec![created("张三", usd("0")), E::AccountClosed {}]
}

fn deposit(amount: Money) -> AccountCommand {
    C::Deposit { amount, description: "存款".into() }
}

fn withdraw(amount: Money) -> AccountCommand {
    C::Withdraw { amount, description: "取款".into() }
}

fn transfer(amount: Money) -> AccountCommand {
    C::Transfer {
        transfer_id: "t-1".into(),
        target_account_id: "account_002".into(),
        amount,
        description: "转账".into(),
    }
}

fn transfer_to(target: &str) -> AccountCommand {
    C::Transfer {
        transfer_id: "t-1".into(),
        target_account_id: target.into(),
        amount: usd("1"),
        description: "".into(),
    }
}

fn receive(source: &str, version: u64, amount: Money, purpose: TransferPurpose) -> AccountCommand {
    C::ReceiveTransfer {
        transfer_id: format!("t-{source}-{version}"),
        source_account_id: source.to_owned(),
        cause: cause(source, version),
        amount,
        description: "来自朋友".into(),
        purpose,
    }
}

fn received(
    source: &str,
    version: u64,
    amount: Money,
    purpose: TransferPurpose,
    old_balance: &str,
    new_balance: &str,
) -> AccountEvent {
    E::MoneyTransferredIn {
        transfer_id: format!("t-{source}-{version}"),
        source_account_id: source.to_owned(),
        amount,
        description: "来自朋友".into(),
        purpose,
        cause: cause(source, version),
        old_balance: d(old_balance),
        new_balance: d(new_balance),
    }
}

fn compensate(transfer_id: &str, amount: Money, reason: RejectionReason, purpose: TransferPurpose) -> AccountCommand {
    C::CompensateTransfer {
        transfer_id: transfer_id.to_owned(),
        target_account_id: "account_002".into(),
        amount,
        reason,
        purpose,
    }
}

fn capture(order_id: &str, amount: Money) -> AccountCommand {
    C::CapturePayment { order_id: order_id.to_owned(), amount, merchant_account_id: "merchant".into() }
}

/// The debit `CapturePayment` emits when it can take the money.
fn payment_out(order_id: &str, amount: Money, old_balance: &str, new_balance: &str) -> AccountEvent {
    E::MoneyTransferredOut {
        transfer_id: format!("payment-{order_id}"),
        target_account_id: "merchant".into(),
        amount,
        description: format!("payment of order {order_id}"),
        purpose: payment(order_id),
        cause: None,
        old_balance: d(old_balance),
        new_balance: d(new_balance),
    }
}

fn payment_rejected(order_id: &str, amount: Money, reason: RejectionReason) -> AccountEvent {
    E::PaymentRejected { order_id: order_id.to_owned(), amount, reason }
}

fn request_refund(order_id: &str) -> AccountCommand {
    C::RequestRefund { order_id: order_id.to_owned() }
}

fn pay_refund(order_id: &str, amount: Money, version: u64) -> AccountCommand {
    C::PayRefund {
        order_id: order_id.to_owned(),
        payer_account_id: "account_001".into(),
        amount,
        cause: cause("account_001", version),
    }
}

/// The debit `PayRefund` emits on the merchant when it can pay.
fn refund_out(order_id: &str, amount: Money, version: u64, old_balance: &str, new_balance: &str) -> AccountEvent {
    E::MoneyTransferredOut {
        transfer_id: format!("refund-{order_id}"),
        target_account_id: "account_001".into(),
        amount,
        description: format!("refund of order {order_id}"),
        purpose: refund(order_id),
        cause: Some(cause("account_001", version)),
        old_balance: d(old_balance),
        new_balance: d(new_balance),
    }
}

fn refund_failed(order_id: &str, amount: Money, reason: RejectionReason, version: u64) -> AccountEvent {
    E::RefundFailed { order_id: order_id.to_owned(), amount, reason, cause: Some(cause("account_001", version)) }
}

fn is_invalid_amount(e: &AccountError) -> bool {
    matches!(e, AccountError::Money(domain_core::Error::InvalidAmount { .. }))
}

// ------------------------------------------------------------ seed story

/// Runs `command` on `history`, expects exactly `expected`, and appends it.
#[track_caller]
fn step(history: &mut Vec<AccountEvent>, command: AccountCommand, expected: Vec<AccountEvent>) {
    Test::given(history.clone()).when(command).then_expect_events(expected.clone());
    history.extend(expected);
}

#[test]
fn seed_story_open_deposit_withdraw_transfer_ends_at_1000() {
    let mut history = Vec::new();
    step(
        &mut history,
        C::Open { account_holder: "张三".into(), initial_balance: usd("1000") },
        vec![created("张三", usd("1000"))],
    );
    step(
        &mut history,
        C::Deposit { amount: usd("500"), description: "工资".into() },
        vec![E::MoneyDeposited {
            amount: usd("500"),
            description: "工资".into(),
            old_balance: d("1000"),
            new_balance: d("1500"),
        }],
    );
    step(
        &mut history,
        C::Withdraw { amount: usd("200"), description: "购物".into() },
        vec![E::MoneyWithdrawn {
            amount: usd("200"),
            description: "购物".into(),
            old_balance: d("1500"),
            new_balance: d("1300"),
        }],
    );
    step(
        &mut history,
        C::Transfer {
            transfer_id: "transfer-001".into(),
            target_account_id: "account_002".into(),
            amount: usd("300"),
            description: "转账给朋友".into(),
        },
        vec![E::MoneyTransferredOut {
            transfer_id: "transfer-001".into(),
            target_account_id: "account_002".into(),
            amount: usd("300"),
            description: "转账给朋友".into(),
            purpose: TransferPurpose::Transfer,
            cause: None,
            old_balance: d("1300"),
            new_balance: d("1000"),
        }],
    );

    // Reloading from the events gives the seed's printout.
    let mut reloaded = AggregateRoot::<Account>::new("account_001");
    reloaded.replay(&history);
    let state = reloaded.state();
    assert_eq!(reloaded.version(), 4);
    assert_eq!(state.account_holder, "张三");
    assert_eq!(state.currency, Some(Currency::USD));
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(state.balance, d("1000"));
    assert_eq!(state.balance.to_string(), "1000");
    assert_eq!(state.balance_money(), Some(usd("1000")));
    assert_eq!(
        history.iter().map(AccountEvent::name).collect::<Vec<_>>(),
        ["AccountCreated", "MoneyDeposited", "MoneyWithdrawn", "MoneyTransferredOut"]
    );
}

// ------------------------------------------------------------------ open

#[test]
fn open_records_the_trimmed_holder_and_the_initial_balance() {
    let root = Test::given_no_history()
        .when(C::Open { account_holder: "  张三 \t".into(), initial_balance: cny("1000.50") })
        .then_expect_events(vec![created("张三", cny("1000.50"))]);
    let state = root.state();
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(state.account_holder, "张三");
    assert_eq!(state.currency, Some(Currency::CNY));
    assert_eq!(state.balance, d("1000.50"));
}

#[test]
fn an_unopened_account_has_no_balance_money() {
    let state = Account::default();
    assert_eq!(state.status, AccountStatus::NotOpened);
    assert_eq!(state.balance_money(), None);
}

#[test]
fn open_twice_is_already_opened_whatever_the_status() {
    let open = || C::Open { account_holder: "李四".into(), initial_balance: usd("5") };
    Test::given(usd_account("1000")).when(open()).then_expect_error(|e| *e == AccountError::AlreadyOpened);
    Test::given(frozen_usd_account("1000")).when(open()).then_expect_error(|e| *e == AccountError::AlreadyOpened);
    Test::given(closed_usd_account()).when(open()).then_expect_error(|e| *e == AccountError::AlreadyOpened);
}

#[test]
fn open_with_an_empty_or_whitespace_holder_is_refused() {
    for holder in ["", " ", "   ", "\t\n", "\u{3000}"] {
        Test::given_no_history()
            .when(C::Open { account_holder: holder.into(), initial_balance: usd("10") })
            .then_expect_error(|e| *e == AccountError::EmptyHolder);
    }
}

#[test]
fn open_with_a_negative_initial_balance_is_refused() {
    Test::given_no_history()
        .when(C::Open { account_holder: "张三".into(), initial_balance: usd("-0.01") })
        .then_expect_error(|e| *e == AccountError::NegativeInitialBalance(d("-0.01")));
}

#[test]
fn open_with_an_over_precise_initial_balance_is_refused() {
    for initial_balance in [cny("1.001"), jpy("1.5"), usd("0.001")] {
        Test::given_no_history()
            .when(C::Open { account_holder: "张三".into(), initial_balance })
            .then_expect_error(is_invalid_amount);
    }
    // Trailing zeros are not precision.
    Test::given_no_history()
        .when(C::Open { account_holder: "张三".into(), initial_balance: cny("1.000") })
        .then_expect_events(vec![created("张三", cny("1.000"))]);
}

#[test]
fn open_with_a_zero_initial_balance_is_fine() {
    let root = Test::given_no_history()
        .when(C::Open { account_holder: "张三".into(), initial_balance: jpy("0") })
        .then_expect_events(vec![created("张三", jpy("0"))]);
    assert_eq!(root.state().balance, Decimal::ZERO);
    assert_eq!(root.state().currency, Some(jpy_currency()));
}

#[test]
fn open_after_a_rejected_payment_on_the_unopened_stream_works() {
    // A payment from an account that does not exist yet is recorded as
    // rejected on its stream ...
    let mut root = Test::given_no_history().when(capture("o-1", cny("10"))).then_expect_events(vec![payment_rejected(
        "o-1",
        cny("10"),
        RejectionReason::AccountNotFound,
    )]);
    assert_eq!(root.state().status, AccountStatus::NotOpened);
    root.mark_committed();
    let history = vec![payment_rejected("o-1", cny("10"), RejectionReason::AccountNotFound)];
    // ... and the account can still be opened.
    let root = Test::given(history.clone())
        .when(C::Open { account_holder: "张三".into(), initial_balance: cny("100") })
        .then_expect_events(vec![created("张三", cny("100"))]);
    assert_eq!(root.version(), 2);
    assert_eq!(root.state().status, AccountStatus::Active);
    assert_eq!(root.state().payments["o-1"].stage, PaymentStage::Rejected);
    // The refusal stays the decision for that order.
    Test::given(history).and(vec![created("张三", cny("100"))]).when(capture("o-1", cny("10"))).then_nothing();
}

// --------------------------------------------------------------- deposit

#[test]
fn deposit_credits_with_old_and_new_balance() {
    let root = Test::given(usd_account("1000"))
        .when(C::Deposit { amount: usd("0.01"), description: "利息".into() })
        .then_expect_events(vec![E::MoneyDeposited {
            amount: usd("0.01"),
            description: "利息".into(),
            old_balance: d("1000"),
            new_balance: d("1000.01"),
        }]);
    assert_eq!(root.state().balance, d("1000.01"));
}

#[test]
fn deposit_of_zero_negative_or_over_precise_amounts_is_invalid() {
    for amount in [cny("0"), cny("-1"), cny("0.001"), cny("12.345")] {
        Test::given(vec![created("张三", cny("100"))]).when(deposit(amount)).then_expect_error(is_invalid_amount);
    }
    for amount in [jpy("1.5"), jpy("0"), jpy("-100")] {
        Test::given(vec![created("山田", jpy("100"))]).when(deposit(amount)).then_expect_error(is_invalid_amount);
    }
    Test::given(vec![created("山田", jpy("100"))]).when(deposit(jpy("150"))).then_expect_events(vec![
        E::MoneyDeposited {
            amount: jpy("150"),
            description: "存款".into(),
            old_balance: d("100"),
            new_balance: d("250"),
        },
    ]);
}

#[test]
fn deposit_in_another_currency_is_refused() {
    Test::given(usd_account("1000"))
        .when(deposit(cny("10")))
        .then_expect_error(|e| *e == AccountError::CurrencyMismatch { account: Currency::USD, amount: Currency::CNY });
}

#[test]
fn deposit_on_an_unopened_frozen_or_closed_account_is_refused() {
    Test::given_no_history().when(deposit(usd("10"))).then_expect_error(|e| *e == AccountError::NotOpened);
    Test::given(frozen_usd_account("10")).when(deposit(usd("10"))).then_expect_error(|e| *e == AccountError::Frozen);
    Test::given(closed_usd_account()).when(deposit(usd("10"))).then_expect_error(|e| *e == AccountError::Closed);
}

#[test]
fn deposit_that_would_overflow_the_balance_is_refused() {
    let max = Money::new(Decimal::MAX, Currency::USD);
    Test::given(vec![created("张三", max)])
        .when(deposit(usd("1")))
        .then_expect_error(|e| *e == AccountError::Money(domain_core::Error::AmountOverflow));
}

// -------------------------------------------------------------- withdraw

#[test]
fn withdraw_debits_with_old_and_new_balance() {
    let root = Test::given(usd_account("1000"))
        .when(C::Withdraw { amount: usd("999.99"), description: "房租".into() })
        .then_expect_events(vec![E::MoneyWithdrawn {
            amount: usd("999.99"),
            description: "房租".into(),
            old_balance: d("1000"),
            new_balance: d("0.01"),
        }]);
    assert_eq!(root.state().balance, d("0.01"));
}

#[test]
fn withdraw_of_exactly_the_balance_leaves_zero() {
    let root =
        Test::given(usd_account("250.50")).when(withdraw(usd("250.50"))).then_expect_events(vec![E::MoneyWithdrawn {
            amount: usd("250.50"),
            description: "取款".into(),
            old_balance: d("250.50"),
            new_balance: d("0"),
        }]);
    assert!(root.state().balance.is_zero());
}

#[test]
fn withdraw_more_than_the_balance_is_insufficient_funds_and_never_overdraws() {
    Test::given(usd_account("100"))
        .when(withdraw(usd("100.01")))
        .then_expect_error(|e| *e == AccountError::InsufficientFunds { balance: d("100"), requested: d("100.01") });
    let root = Test::given(usd_account("0"))
        .when(withdraw(usd("0.01")))
        .then_expect_error(|e| *e == AccountError::InsufficientFunds { balance: d("0"), requested: d("0.01") });
    assert!(root.state().balance.is_zero());
    // After money left, the rest is all that can go.
    Test::given(usd_account("100"))
        .and_commands([withdraw(usd("60"))])
        .when(withdraw(usd("40.01")))
        .then_expect_error(|e| *e == AccountError::InsufficientFunds { balance: d("40"), requested: d("40.01") });
}

#[test]
fn withdraw_of_zero_negative_or_over_precise_amounts_is_invalid() {
    for amount in [cny("0"), cny("-5"), cny("0.001")] {
        Test::given(vec![created("张三", cny("100"))]).when(withdraw(amount)).then_expect_error(is_invalid_amount);
    }
    Test::given(vec![created("山田", jpy("100"))]).when(withdraw(jpy("1.5"))).then_expect_error(is_invalid_amount);
}

#[test]
fn withdraw_in_another_currency_is_refused() {
    Test::given(usd_account("1000"))
        .when(withdraw(cny("10")))
        .then_expect_error(|e| *e == AccountError::CurrencyMismatch { account: Currency::USD, amount: Currency::CNY });
}

#[test]
fn withdraw_on_an_unopened_frozen_or_closed_account_is_refused() {
    Test::given_no_history().when(withdraw(usd("10"))).then_expect_error(|e| *e == AccountError::NotOpened);
    Test::given(frozen_usd_account("100")).when(withdraw(usd("10"))).then_expect_error(|e| *e == AccountError::Frozen);
    Test::given(closed_usd_account()).when(withdraw(usd("10"))).then_expect_error(|e| *e == AccountError::Closed);
}

// -------------------------------------------------------------- transfer

#[test]
fn transfer_debits_with_purpose_transfer_no_cause_and_balances() {
    let root =
        Test::given(usd_account("500")).when(transfer(usd("500"))).then_expect_events(vec![E::MoneyTransferredOut {
            transfer_id: "t-1".into(),
            target_account_id: "account_002".into(),
            amount: usd("500"),
            description: "转账".into(),
            purpose: TransferPurpose::Transfer,
            cause: None,
            old_balance: d("500"),
            new_balance: d("0"),
        }]);
    let state = root.state();
    assert!(state.balance.is_zero());
    assert!(state.payments.is_empty() && state.applied_from.is_empty() && state.compensated.is_empty());
}

#[test]
fn transfer_of_more_than_the_balance_is_insufficient_funds() {
    Test::given(usd_account("299.99"))
        .when(transfer(usd("300")))
        .then_expect_error(|e| *e == AccountError::InsufficientFunds { balance: d("299.99"), requested: d("300") });
}

#[test]
fn transfer_of_invalid_amounts_or_in_another_currency_is_refused() {
    for amount in [usd("0"), usd("-1"), usd("0.001")] {
        Test::given(usd_account("100")).when(transfer(amount)).then_expect_error(is_invalid_amount);
    }
    Test::given(usd_account("100"))
        .when(transfer(cny("1")))
        .then_expect_error(|e| matches!(e, AccountError::CurrencyMismatch { .. }));
}

#[test]
fn transfer_to_an_invalid_account_id_is_refused() {
    let too_long = "a".repeat(MAX_ACCOUNT_ID_LEN + 1);
    for target in ["", "account 002", " account_002", "$all", "$", "a\u{7}b", "a\nb", too_long.as_str()] {
        Test::given(usd_account("100"))
            .when(transfer_to(target))
            .then_expect_error(|e| *e == AccountError::InvalidAccountId(target.to_owned()));
    }
    // The longest id, and `$` inside an id, are fine.
    let longest = "a".repeat(MAX_ACCOUNT_ID_LEN);
    for target in [longest.as_str(), "账户_002", "a$b"] {
        assert_eq!(validate_account_id(target), Ok(()));
        Test::given(usd_account("100")).when(transfer_to(target)).then_events(|events| {
            assert!(
                matches!(events, [E::MoneyTransferredOut { target_account_id, .. }] if target_account_id == target)
            );
        });
    }
}

#[test]
fn transfer_without_an_id_is_refused() {
    for transfer_id in ["", "  "] {
        Test::given(usd_account("100"))
            .when(C::Transfer {
                transfer_id: transfer_id.into(),
                target_account_id: "account_002".into(),
                amount: usd("1"),
                description: "".into(),
            })
            .then_expect_error(|e| *e == AccountError::EmptyTransferId);
    }
}

#[test]
fn transfer_from_an_unopened_frozen_or_closed_account_is_refused() {
    Test::given_no_history().when(transfer(usd("1"))).then_expect_error(|e| *e == AccountError::NotOpened);
    Test::given(frozen_usd_account("100")).when(transfer(usd("1"))).then_expect_error(|e| *e == AccountError::Frozen);
    Test::given(closed_usd_account()).when(transfer(usd("1"))).then_expect_error(|e| *e == AccountError::Closed);
}

// ------------------------------------------------ freeze, unfreeze, close

#[test]
fn freeze_an_active_account_records_the_reason() {
    let root = Test::given(usd_account("100"))
        .when(C::Freeze { reason: "可疑交易".into() })
        .then_expect_events(vec![E::AccountFrozen { reason: "可疑交易".into() }]);
    assert_eq!(root.state().status, AccountStatus::Frozen);
    assert_eq!(root.state().balance, d("100"), "freezing keeps the money");
}

#[test]
fn freeze_twice_changes_nothing() {
    let root = Test::given(frozen_usd_account("100")).when(C::Freeze { reason: "again".into() }).then_nothing();
    assert_eq!(root.state().status, AccountStatus::Frozen);
}

#[test]
fn unfreeze_a_frozen_account_makes_it_usable_again() {
    let root = Test::given(frozen_usd_account("100")).when(C::Unfreeze).then_expect_events(vec![E::AccountUnfrozen {}]);
    assert_eq!(root.state().status, AccountStatus::Active);
    Test::given(frozen_usd_account("100"))
        .and(vec![E::AccountUnfrozen {}])
        .when(withdraw(usd("100")))
        .then_expect_events(vec![E::MoneyWithdrawn {
            amount: usd("100"),
            description: "取款".into(),
            old_balance: d("100"),
            new_balance: d("0"),
        }]);
}

#[test]
fn unfreeze_an_active_account_changes_nothing() {
    Test::given(usd_account("100")).when(C::Unfreeze).then_nothing();
}

#[test]
fn freeze_unfreeze_or_close_an_unopened_account_is_not_opened() {
    for command in [C::Freeze { reason: "x".into() }, C::Unfreeze, C::Close] {
        Test::given_no_history().when(command).then_expect_error(|e| *e == AccountError::NotOpened);
    }
}

#[test]
fn freeze_or_unfreeze_a_closed_account_is_closed() {
    for command in [C::Freeze { reason: "x".into() }, C::Unfreeze] {
        Test::given(closed_usd_account()).when(command).then_expect_error(|e| *e == AccountError::Closed);
    }
}

#[test]
fn a_frozen_account_refuses_every_money_command_of_its_holder() {
    for command in [deposit(usd("1")), withdraw(usd("1")), transfer(usd("1"))] {
        Test::given(frozen_usd_account("100")).when(command).then_expect_error(|e| *e == AccountError::Frozen);
    }
}

#[test]
fn close_with_money_left_is_balance_not_zero() {
    Test::given(usd_account("0.01"))
        .when(C::Close)
        .then_expect_error(|e| *e == AccountError::BalanceNotZero(d("0.01")));
    Test::given(frozen_usd_account("5"))
        .when(C::Close)
        .then_expect_error(|e| *e == AccountError::BalanceNotZero(d("5")));
}

#[test]
fn close_at_a_zero_balance_closes() {
    let root = Test::given(usd_account("100"))
        .and_commands([withdraw(usd("100"))])
        .when(C::Close)
        .then_expect_events(vec![E::AccountClosed {}]);
    assert_eq!(root.state().status, AccountStatus::Closed);
    // A frozen account at zero can be closed too.
    Test::given(frozen_usd_account("0")).when(C::Close).then_expect_events(vec![E::AccountClosed {}]);
}

#[test]
fn close_a_closed_account_changes_nothing() {
    Test::given(closed_usd_account()).when(C::Close).then_nothing();
}

#[test]
fn a_closed_account_refuses_every_money_command_of_its_holder() {
    for command in [deposit(usd("1")), withdraw(usd("1")), transfer(usd("1"))] {
        Test::given(closed_usd_account()).when(command).then_expect_error(|e| *e == AccountError::Closed);
    }
}

/// The saga steps: receive, compensate, capture, refund; and the
/// state and replay checks.
mod saga_steps;

//! Given/when/then tests of the account's saga steps, and of its state
//! against its events.

use super::*;

// ------------------------------------------------------ receive transfer

#[test]
fn receive_transfer_credits_with_money_transferred_in() {
    let root = Test::given(usd_account("100"))
        .when(receive("account_002", 7, usd("300"), TransferPurpose::Transfer))
        .then_expect_events(vec![received("account_002", 7, usd("300"), TransferPurpose::Transfer, "100", "400")]);
    assert_eq!(root.state().balance, d("400"));
    assert_eq!(root.state().applied_from.get("account_002"), Some(&7));
}

#[test]
fn receive_a_payment_also_records_payment_captured() {
    let root = Test::given(vec![created("商户", usd("0"))])
        .when(receive("account_001", 3, usd("99.97"), payment("o-1")))
        .then_expect_events(vec![
            received("account_001", 3, usd("99.97"), payment("o-1"), "0", "99.97"),
            E::PaymentCaptured { order_id: "o-1".into(), amount: usd("99.97"), payer_account_id: "account_001".into() },
        ]);
    assert_eq!(root.state().balance, d("99.97"));
    assert!(root.state().payments.is_empty(), "the merchant's statement holds the payments it made, not received");
}

#[test]
fn receive_a_refund_also_records_refund_issued_and_settles_the_payment() {
    let history = vec![
        created("张三", usd("100")),
        payment_out("o-1", usd("40"), "100", "60"),
        E::RefundRequested { order_id: "o-1".into(), amount: usd("40"), merchant_account_id: "merchant".into() },
    ];
    let root = Test::given(history).when(receive("merchant", 9, usd("40"), refund("o-1"))).then_expect_events(vec![
        received("merchant", 9, usd("40"), refund("o-1"), "60", "100"),
        E::RefundIssued { order_id: "o-1".into(), amount: usd("40") },
    ]);
    assert_eq!(root.state().balance, d("100"));
    assert_eq!(root.state().payments["o-1"].stage, PaymentStage::Refunded);
}

#[test]
fn receive_transfer_repeat_of_the_same_or_an_older_cause_changes_nothing() {
    let history = || {
        vec![
            created("张三", usd("100")),
            received("account_002", 7, usd("300"), TransferPurpose::Transfer, "100", "400"),
        ]
    };
    Test::given(history()).when(receive("account_002", 7, usd("300"), TransferPurpose::Transfer)).then_nothing();
    Test::given(history()).when(receive("account_002", 6, usd("300"), TransferPurpose::Transfer)).then_nothing();
    Test::given(history()).when(receive("account_002", 1, usd("5"), payment("o-1"))).then_nothing();
    // Driven by commands rather than given events: the same holds.
    let root = Test::given(usd_account("100"))
        .and_commands([receive("account_002", 7, usd("300"), TransferPurpose::Transfer)])
        .when(receive("account_002", 7, usd("300"), TransferPurpose::Transfer))
        .then_nothing();
    assert_eq!(root.state().balance, d("400"));
}

#[test]
fn receive_transfer_repeat_changes_nothing_even_after_a_freeze_or_a_close() {
    let credited = || {
        vec![created("张三", usd("0")), received("account_002", 7, usd("300"), TransferPurpose::Transfer, "0", "300")]
    };
    Test::given(credited())
        .and(vec![frozen()])
        .when(receive("account_002", 7, usd("300"), TransferPurpose::Transfer))
        .then_nothing();
    let root = Test::given(credited())
        .and_commands([withdraw(usd("300")), C::Close])
        .when(receive("account_002", 7, usd("300"), TransferPurpose::Transfer))
        .then_nothing();
    assert_eq!(root.state().status, AccountStatus::Closed);
    // A new transfer from there, however, is refused by the closed account.
    Test::given(credited())
        .and_commands([withdraw(usd("300")), C::Close])
        .when(receive("account_002", 8, usd("300"), TransferPurpose::Transfer))
        .then_expect_error(|e| *e == AccountError::Closed);
}

#[test]
fn receive_transfer_of_a_newer_event_from_the_same_source_is_credited() {
    let root = Test::given(vec![
        created("张三", usd("100")),
        received("account_002", 7, usd("300"), TransferPurpose::Transfer, "100", "400"),
    ])
    .when(receive("account_002", 8, usd("1"), TransferPurpose::Transfer))
    .then_expect_events(vec![received("account_002", 8, usd("1"), TransferPurpose::Transfer, "400", "401")]);
    assert_eq!(root.state().applied_from.get("account_002"), Some(&8));
}

#[test]
fn receive_transfer_marks_are_per_source_account() {
    let root = Test::given(vec![
        created("张三", usd("100")),
        received("account_002", 7, usd("300"), TransferPurpose::Transfer, "100", "400"),
    ])
    .when(receive("account_003", 2, usd("50"), TransferPurpose::Transfer))
    .then_expect_events(vec![received("account_003", 2, usd("50"), TransferPurpose::Transfer, "400", "450")]);
    let marks: Vec<(&str, u64)> = root.state().applied_from.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(marks, [("account_002", 7), ("account_003", 2)]);
}

#[test]
fn receive_transfer_refusals_map_to_their_rejection_reasons() {
    let cases: Vec<(Vec<AccountEvent>, Money, AccountError, RejectionReason)> = vec![
        (vec![], usd("10"), AccountError::NotOpened, RejectionReason::AccountNotFound),
        (frozen_usd_account("100"), usd("10"), AccountError::Frozen, RejectionReason::AccountFrozen),
        (closed_usd_account(), usd("10"), AccountError::Closed, RejectionReason::AccountClosed),
        (
            usd_account("100"),
            cny("10"),
            AccountError::CurrencyMismatch { account: Currency::USD, amount: Currency::CNY },
            RejectionReason::CurrencyMismatch,
        ),
    ];
    for (history, amount, error, reason) in cases {
        let root = Test::given(history)
            .when(receive("account_002", 1, amount, TransferPurpose::Transfer))
            .then_expect_error(|e| *e == error && e.rejection_reason() == Some(reason));
        assert!(root.state().applied_from.is_empty(), "a refused credit is not marked as applied");
    }
    // An amount no account could hold is a bug to dead-letter, not a refusal.
    Test::given(usd_account("100"))
        .when(receive("account_002", 1, usd("0"), TransferPurpose::Transfer))
        .then_expect_error(|e| is_invalid_amount(e) && e.rejection_reason().is_none());
}

#[test]
fn rejection_reasons_of_every_account_error() {
    let cases = [
        (AccountError::NotOpened, Some(RejectionReason::AccountNotFound)),
        (AccountError::Frozen, Some(RejectionReason::AccountFrozen)),
        (AccountError::Closed, Some(RejectionReason::AccountClosed)),
        (
            AccountError::CurrencyMismatch { account: Currency::USD, amount: Currency::CNY },
            Some(RejectionReason::CurrencyMismatch),
        ),
        (
            AccountError::Money(domain_core::Error::CurrencyMismatch { left: "USD".into(), right: "CNY".into() }),
            Some(RejectionReason::CurrencyMismatch),
        ),
        (
            AccountError::InsufficientFunds { balance: d("1"), requested: d("2") },
            Some(RejectionReason::InsufficientFunds),
        ),
        (AccountError::AlreadyOpened, None),
        (AccountError::EmptyHolder, None),
        (AccountError::InvalidAccountId("$x".into()), None),
        (AccountError::NegativeInitialBalance(d("-1")), None),
        (AccountError::SelfTransfer, None),
        (AccountError::EmptyTransferId, None),
        (AccountError::EmptyOrderId, None),
        (AccountError::BalanceNotZero(d("1")), None),
        (AccountError::Money(domain_core::Error::AmountOverflow), None),
        (AccountError::Money(domain_core::Error::InvalidAmount { amount: "0".into(), reason: "zero".into() }), None),
    ];
    for (error, reason) in cases {
        assert_eq!(error.rejection_reason(), reason, "{error:?}");
    }
}

#[test]
fn rejection_reason_names_are_their_wire_names() {
    use RejectionReason as R;
    for reason in [
        R::AccountNotFound,
        R::AccountFrozen,
        R::AccountClosed,
        R::CurrencyMismatch,
        R::InsufficientFunds,
        R::InvalidAmount,
    ] {
        assert_eq!(serde_json::to_value(reason).expect("json"), serde_json::json!(reason.as_str()));
        assert_eq!(reason.to_string(), reason.as_str());
    }
}

// ---------------------------------------------------- compensate transfer

/// A USD account that sent `t-1` of 300 out of 1000.
fn sent_300() -> Vec<AccountEvent> {
    vec![
        created("张三", usd("1000")),
        E::MoneyTransferredOut {
            transfer_id: "t-1".into(),
            target_account_id: "account_002".into(),
            amount: usd("300"),
            description: "转账".into(),
            purpose: TransferPurpose::Transfer,
            cause: None,
            old_balance: d("1000"),
            new_balance: d("700"),
        },
    ]
}

fn paid_back(transfer_id: &str, amount: Money, reason: RejectionReason, old: &str, new: &str) -> Vec<AccountEvent> {
    vec![
        E::TransferFailed {
            transfer_id: transfer_id.to_owned(),
            target_account_id: "account_002".into(),
            amount,
            reason,
        },
        E::TransferRefunded { transfer_id: transfer_id.to_owned(), amount, old_balance: d(old), new_balance: d(new) },
    ]
}

#[test]
fn compensate_transfer_pays_the_money_back() {
    let root = Test::given(sent_300())
        .when(compensate("t-1", usd("300"), RejectionReason::AccountClosed, TransferPurpose::Transfer))
        .then_expect_events(paid_back("t-1", usd("300"), RejectionReason::AccountClosed, "700", "1000"));
    assert_eq!(root.state().balance, d("1000"));
    assert!(root.state().compensated.contains("t-1"));
}

#[test]
fn compensate_a_payment_also_rejects_the_payment() {
    let history = vec![created("张三", usd("100")), payment_out("o-1", usd("40"), "100", "60")];
    let mut expected = paid_back("payment-o-1", usd("40"), RejectionReason::AccountFrozen, "60", "100");
    expected.push(payment_rejected("o-1", usd("40"), RejectionReason::AccountFrozen));
    let root = Test::given(history.clone())
        .when(compensate("payment-o-1", usd("40"), RejectionReason::AccountFrozen, payment("o-1")))
        .then_expect_events(expected.clone());
    let record = &root.state().payments["o-1"];
    assert_eq!(
        (record.stage, record.amount, record.merchant_account_id.as_str()),
        (PaymentStage::Rejected, usd("40"), "merchant")
    );
    // Nothing is owed back any more.
    Test::given(history).and(expected).when(request_refund("o-1")).then_nothing();
}

#[test]
fn compensate_a_refund_also_records_refund_failed_on_the_merchant() {
    let history = vec![created("商户", usd("100")), refund_out("o-1", usd("40"), 5, "100", "60")];
    let mut expected = paid_back("refund-o-1", usd("40"), RejectionReason::AccountClosed, "60", "100");
    expected.push(E::RefundFailed {
        order_id: "o-1".into(),
        amount: usd("40"),
        reason: RejectionReason::AccountClosed,
        cause: None,
    });
    let root = Test::given(history)
        .when(compensate("refund-o-1", usd("40"), RejectionReason::AccountClosed, refund("o-1")))
        .then_expect_events(expected);
    assert_eq!(root.state().balance, d("100"));
    assert_eq!(root.state().applied_from.get("account_001"), Some(&5));
}

#[test]
fn a_second_compensation_of_the_same_transfer_changes_nothing() {
    let root = Test::given(sent_300())
        .and_commands([compensate("t-1", usd("300"), RejectionReason::AccountClosed, TransferPurpose::Transfer)])
        .when(compensate("t-1", usd("300"), RejectionReason::AccountNotFound, TransferPurpose::Transfer))
        .then_nothing();
    assert_eq!(root.state().balance, d("1000"));
}

#[test]
fn compensation_reaches_a_frozen_or_closed_account() {
    let root = Test::given(sent_300())
        .and(vec![frozen()])
        .when(compensate("t-1", usd("300"), RejectionReason::AccountFrozen, TransferPurpose::Transfer))
        .then_expect_events(paid_back("t-1", usd("300"), RejectionReason::AccountFrozen, "700", "1000"));
    assert_eq!((root.state().status, root.state().balance), (AccountStatus::Frozen, d("1000")));

    let emptied_and_closed = vec![
        created("张三", usd("300")),
        E::MoneyTransferredOut {
            transfer_id: "t-1".into(),
            target_account_id: "account_002".into(),
            amount: usd("300"),
            description: "转账".into(),
            purpose: TransferPurpose::Transfer,
            cause: None,
            old_balance: d("300"),
            new_balance: d("0"),
        },
        E::AccountClosed {},
    ];
    let root = Test::given(emptied_and_closed)
        .when(compensate("t-1", usd("300"), RejectionReason::AccountNotFound, TransferPurpose::Transfer))
        .then_expect_events(paid_back("t-1", usd("300"), RejectionReason::AccountNotFound, "0", "300"));
    assert_eq!((root.state().status, root.state().balance), (AccountStatus::Closed, d("300")));
}

#[test]
fn compensation_on_an_unopened_account_is_not_opened() {
    Test::given_no_history()
        .when(compensate("t-1", usd("300"), RejectionReason::AccountNotFound, TransferPurpose::Transfer))
        .then_expect_error(|e| *e == AccountError::NotOpened);
}

// -------------------------------------------------------- capture payment

#[test]
fn capture_payment_debits_towards_the_merchant_and_records_the_payment() {
    let root = Test::given(usd_account("100"))
        .when(capture("o-1", usd("99.97")))
        .then_expect_events(vec![payment_out("o-1", usd("99.97"), "100", "0.03")]);
    let state = root.state();
    assert_eq!(state.balance, d("0.03"));
    assert_eq!(state.payments.len(), 1);
    assert_eq!(
        state.payments["o-1"],
        PaymentRecord { amount: usd("99.97"), merchant_account_id: "merchant".into(), stage: PaymentStage::Debited }
    );
}

#[test]
fn capture_payment_of_exactly_the_balance_leaves_zero() {
    let root = Test::given(usd_account("50")).when(capture("o-1", usd("50"))).then_expect_events(vec![payment_out(
        "o-1",
        usd("50"),
        "50",
        "0",
    )]);
    assert!(root.state().balance.is_zero());
}

#[test]
fn capture_payment_repeat_changes_nothing() {
    let root = Test::given(usd_account("100"))
        .and_commands([capture("o-1", usd("30"))])
        .when(capture("o-1", usd("30")))
        .then_nothing();
    assert_eq!(root.state().balance, d("70"));
    // Even with another amount: one payment per order.
    Test::given(usd_account("100"))
        .and_commands([capture("o-1", usd("30"))])
        .when(capture("o-1", usd("1")))
        .then_nothing();
}

#[test]
fn capture_payment_refusals_are_recorded_as_payment_rejected_and_stick() {
    let cases: Vec<(Vec<AccountEvent>, Money, RejectionReason, Vec<AccountCommand>)> = vec![
        (usd_account("10"), usd("10.01"), RejectionReason::InsufficientFunds, vec![deposit(usd("1000"))]),
        (frozen_usd_account("100"), usd("10"), RejectionReason::AccountFrozen, vec![C::Unfreeze]),
        (closed_usd_account(), usd("10"), RejectionReason::AccountClosed, vec![]),
        (
            vec![],
            usd("10"),
            RejectionReason::AccountNotFound,
            vec![C::Open { account_holder: "张三".into(), initial_balance: usd("1000") }],
        ),
        (usd_account("100"), cny("10"), RejectionReason::CurrencyMismatch, vec![]),
    ];
    for (history, amount, reason, meanwhile) in cases {
        let rejected = payment_rejected("o-1", amount, reason);
        let root = Test::given(history.clone()).when(capture("o-1", amount)).then_expect_events(vec![rejected.clone()]);
        assert_eq!(root.state().payments["o-1"].stage, PaymentStage::Rejected, "{reason}");
        assert_eq!(root.state().balance, history.iter().fold(Account::default(), fold).balance, "nothing taken");
        // The decision is sticky, even if the account could pay now.
        Test::given(history).and(vec![rejected]).and_commands(meanwhile).when(capture("o-1", amount)).then_nothing();
    }
}

fn fold(mut state: Account, event: &AccountEvent) -> Account {
    domain_core::Aggregate::apply(&mut state, event);
    state
}

#[test]
fn capture_payment_of_an_invalid_amount_is_an_error() {
    for amount in [usd("0"), usd("-1"), usd("0.001")] {
        let root = Test::given(usd_account("100")).when(capture("o-1", amount)).then_expect_error(is_invalid_amount);
        assert!(root.state().payments.is_empty());
    }
    // Checked before the account is even looked at.
    Test::given_no_history().when(capture("o-1", usd("0"))).then_expect_error(is_invalid_amount);
}

#[test]
fn capture_payment_without_an_order_id_or_with_an_invalid_merchant_is_an_error() {
    for order_id in ["", "   "] {
        Test::given(usd_account("100"))
            .when(capture(order_id, usd("1")))
            .then_expect_error(|e| *e == AccountError::EmptyOrderId);
    }
    Test::given(usd_account("100"))
        .when(C::CapturePayment { order_id: "o-1".into(), amount: usd("1"), merchant_account_id: "the shop".into() })
        .then_expect_error(|e| *e == AccountError::InvalidAccountId("the shop".into()));
}

// --------------------------------------------------------- request refund

#[test]
fn request_refund_after_a_debited_payment_names_amount_and_merchant() {
    let root = Test::given(usd_account("100"))
        .and_commands([capture("o-1", usd("40"))])
        .when(request_refund("o-1"))
        .then_expect_events(vec![E::RefundRequested {
            order_id: "o-1".into(),
            amount: usd("40"),
            merchant_account_id: "merchant".into(),
        }]);
    assert_eq!(root.state().payments["o-1"].stage, PaymentStage::RefundRequested);
    assert_eq!(root.state().balance, d("60"), "the money comes back with the refund, not the request");
}

#[test]
fn request_refund_for_an_unknown_or_rejected_order_or_twice_changes_nothing() {
    Test::given(usd_account("100")).when(request_refund("o-404")).then_nothing();
    Test::given(usd_account("10")).and_commands([capture("o-1", usd("40"))]).when(request_refund("o-1")).then_nothing();
    Test::given(usd_account("100"))
        .and_commands([capture("o-1", usd("40")), request_refund("o-1")])
        .when(request_refund("o-1"))
        .then_nothing();
    // Nor after the refund arrived.
    Test::given(usd_account("100"))
        .and_commands([
            capture("o-1", usd("40")),
            request_refund("o-1"),
            receive("merchant", 3, usd("40"), refund("o-1")),
        ])
        .when(request_refund("o-1"))
        .then_nothing();
}

// ------------------------------------------------------------- pay refund

/// The merchant, credited with the payment of o-1 (payer event version 2).
fn merchant_paid(balance_before: &str) -> Vec<AccountEvent> {
    let after = (d(balance_before) + d("40")).to_string();
    vec![
        created("商户", usd(balance_before)),
        received("account_001", 2, usd("40"), payment("o-1"), balance_before, &after),
    ]
}

#[test]
fn pay_refund_transfers_the_money_back_with_the_cause() {
    let root = Test::given(merchant_paid("0"))
        .when(pay_refund("o-1", usd("40"), 3))
        .then_expect_events(vec![refund_out("o-1", usd("40"), 3, "40", "0")]);
    assert!(root.state().balance.is_zero());
    assert_eq!(root.state().applied_from.get("account_001"), Some(&3));
    assert!(root.state().payments.is_empty(), "a refund is not a payment of the merchant");
}

#[test]
fn pay_refund_repeat_after_success_changes_nothing() {
    let root = Test::given(merchant_paid("0"))
        .and_commands([pay_refund("o-1", usd("40"), 3)])
        .when(pay_refund("o-1", usd("40"), 3))
        .then_nothing();
    assert!(root.state().balance.is_zero());
}

#[test]
fn pay_refund_with_insufficient_merchant_funds_is_refund_failed_once() {
    let root = Test::given(merchant_paid("0"))
        .and_commands([withdraw(usd("30"))])
        .when(pay_refund("o-1", usd("40"), 3))
        .then_expect_events(vec![refund_failed("o-1", usd("40"), RejectionReason::InsufficientFunds, 3)]);
    assert_eq!(root.state().balance, d("10"));
    assert_eq!(root.state().applied_from.get("account_001"), Some(&3));
    // A repeat of that cause changes nothing, even once the merchant has money.
    Test::given(merchant_paid("0"))
        .and_commands([withdraw(usd("30"))])
        .and(vec![refund_failed("o-1", usd("40"), RejectionReason::InsufficientFunds, 3)])
        .and_commands([deposit(usd("100"))])
        .when(pay_refund("o-1", usd("40"), 3))
        .then_nothing();
}

#[test]
fn pay_refund_refusals_of_the_merchant_account_are_recorded_with_their_reasons() {
    let cases: Vec<(Vec<AccountEvent>, Money, RejectionReason)> = vec![
        (vec![], usd("40"), RejectionReason::AccountNotFound),
        ([merchant_paid("0"), vec![frozen()]].concat(), usd("40"), RejectionReason::AccountFrozen),
        (closed_usd_account(), usd("40"), RejectionReason::AccountClosed),
        (merchant_paid("0"), cny("40"), RejectionReason::CurrencyMismatch),
    ];
    for (history, amount, reason) in cases {
        Test::given(history)
            .when(pay_refund("o-1", amount, 3))
            .then_expect_events(vec![refund_failed("o-1", amount, reason, 3)]);
    }
}

#[test]
fn pay_refund_of_an_invalid_amount_is_an_error() {
    for amount in [usd("0"), usd("-40"), usd("0.001")] {
        Test::given(merchant_paid("0")).when(pay_refund("o-1", amount, 3)).then_expect_error(is_invalid_amount);
    }
}

// ------------------------------------------- a payment, end to end on two

#[test]
fn payment_and_refund_between_payer_and_merchant_settle_both_accounts() {
    let mut payer = AggregateRoot::<Account>::new("account_001");
    let mut merchant = AggregateRoot::<Account>::new("merchant");
    payer.execute(C::Open { account_holder: "张三".into(), initial_balance: usd("100") }).expect("open payer");
    merchant.execute(C::Open { account_holder: "商户".into(), initial_balance: usd("0") }).expect("open merchant");

    // The saga: debit on the payer, credit on the merchant from that event.
    payer.execute(capture("o-1", usd("40"))).expect("capture");
    let debit_version = payer.version();
    let Some(E::MoneyTransferredOut { transfer_id, amount, description, purpose, .. }) =
        payer.uncommitted().last().cloned()
    else {
        panic!("no debit: {:?}", payer.uncommitted());
    };
    let credit = C::ReceiveTransfer {
        transfer_id,
        source_account_id: "account_001".into(),
        cause: cause("account_001", debit_version),
        amount,
        description,
        purpose,
    };
    assert_eq!(merchant.execute(credit.clone()).expect("credit").len(), 2);
    assert!(merchant.execute(credit).expect("repeat").is_empty());

    // Cancelled: the payer asks, the merchant pays back, the payer is credited.
    payer.execute(request_refund("o-1")).expect("request refund");
    let request_version = payer.version();
    let Some(E::RefundRequested { order_id, amount, .. }) = payer.uncommitted().last().cloned() else {
        panic!("no refund request");
    };
    merchant.execute(pay_refund(&order_id, amount, request_version)).expect("pay refund");
    let refund_version = merchant.version();
    let Some(E::MoneyTransferredOut { transfer_id, amount, description, purpose, .. }) =
        merchant.uncommitted().last().cloned()
    else {
        panic!("no refund debit");
    };
    assert_eq!(transfer_id, "refund-o-1");
    payer
        .execute(C::ReceiveTransfer {
            transfer_id,
            source_account_id: "merchant".into(),
            cause: cause("merchant", refund_version),
            amount,
            description,
            purpose,
        })
        .expect("refund credit");

    assert_eq!((payer.state().balance, merchant.state().balance), (d("100"), d("0")));
    assert_eq!(payer.state().payments["o-1"].stage, PaymentStage::Refunded);
    let names = |root: &AggregateRoot<Account>| root.uncommitted().iter().map(AccountEvent::name).collect::<Vec<_>>();
    assert_eq!(
        names(&payer),
        ["AccountCreated", "MoneyTransferredOut", "RefundRequested", "MoneyTransferredIn", "RefundIssued"]
    );
    assert_eq!(names(&merchant), ["AccountCreated", "MoneyTransferredIn", "PaymentCaptured", "MoneyTransferredOut"]);
    payer.uncommitted().iter().chain(merchant.uncommitted()).for_each(assert_survives_the_wire);
}

// ------------------------------------------------------- events and state

#[test]
fn every_event_travels_under_its_own_name() {
    let events = vec![
        created("张三", usd("1000")),
        E::MoneyDeposited { amount: usd("1"), description: "".into(), old_balance: d("0"), new_balance: d("1") },
        E::MoneyWithdrawn { amount: usd("1"), description: "x".into(), old_balance: d("1"), new_balance: d("0") },
        payment_out("o-1", usd("1.10"), "2.20", "1.10"),
        refund_out("o-1", usd("1"), 4, "1", "0"),
        received("account_002", 7, usd("3"), TransferPurpose::Transfer, "0", "3"),
        paid_back("t-1", usd("1"), RejectionReason::AccountFrozen, "0", "1")[0].clone(),
        paid_back("t-1", usd("1"), RejectionReason::AccountFrozen, "0", "1")[1].clone(),
        E::PaymentCaptured { order_id: "o-1".into(), amount: usd("1"), payer_account_id: "account_001".into() },
        payment_rejected("o-1", usd("1"), RejectionReason::InvalidAmount),
        E::RefundRequested { order_id: "o-1".into(), amount: usd("1"), merchant_account_id: "merchant".into() },
        E::RefundIssued { order_id: "o-1".into(), amount: usd("1") },
        refund_failed("o-1", usd("1"), RejectionReason::InsufficientFunds, 4),
        E::RefundFailed {
            order_id: "o-1".into(),
            amount: usd("1"),
            reason: RejectionReason::AccountClosed,
            cause: None,
        },
        frozen(),
        E::AccountUnfrozen {},
        E::AccountClosed {},
    ];
    for event in &events {
        assert_survives_the_wire(event);
        let envelope = Envelope::new("account_001", 1, event).expect("envelope");
        assert_eq!(envelope.event_type.context(), "accounts");
        assert_eq!(envelope.event_type.name(), event.name());
        assert_eq!(envelope.event_type.version(), 1);
    }
    // Amounts and balances are strings on the wire, never floats.
    let envelope = Envelope::new("account_001", 1, &payment_out("o-1", usd("1.10"), "2.20", "1.10")).expect("envelope");
    assert_eq!(envelope.data["amount"], serde_json::json!({"amount": "1.10", "currency": "USD"}));
    assert_eq!(envelope.data["old_balance"], serde_json::json!("2.20"));
    assert!(envelope.data.get("cause").is_none(), "no cause is left out");
}

#[test]
fn account_status_names() {
    let all = [AccountStatus::NotOpened, AccountStatus::Active, AccountStatus::Frozen, AccountStatus::Closed];
    for status in all {
        assert_eq!(serde_json::to_value(status).expect("json"), serde_json::json!(status.as_str()));
    }
}

/// An account whose state has payments in every stage, marks from two
/// counterparties and two compensations, frozen at the end.
fn busy_account() -> AggregateRoot<Account> {
    let mut root = AggregateRoot::<Account>::new("account_001");
    let commands = vec![
        C::Open { account_holder: "张三".into(), initial_balance: cny("1000.00") },
        capture("o-debited", cny("100.10")),
        capture("o-rejected", cny("5000")),
        capture("o-requested", cny("50")),
        request_refund("o-requested"),
        capture("o-refunded", cny("20")),
        request_refund("o-refunded"),
        receive("merchant", 12, cny("20"), refund("o-refunded")),
        receive("account_009", 4, cny("0.99"), TransferPurpose::Transfer),
        C::Transfer {
            transfer_id: "t-1".into(),
            target_account_id: "account_002".into(),
            amount: cny("10"),
            description: "".into(),
        },
        C::CompensateTransfer {
            transfer_id: "t-1".into(),
            target_account_id: "account_002".into(),
            amount: cny("10"),
            reason: RejectionReason::AccountClosed,
            purpose: TransferPurpose::Transfer,
        },
        capture("o-bounced", cny("7")),
        compensate("payment-o-bounced", cny("7"), RejectionReason::AccountFrozen, payment("o-bounced")),
        C::Freeze { reason: "review".into() },
    ];
    for command in commands {
        root.execute(command.clone()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
    root
}

#[test]
fn busy_account_state_is_what_its_events_say() {
    let root = busy_account();
    let state = root.state();
    let stages: Vec<(&str, PaymentStage)> = state.payments.iter().map(|(k, p)| (k.as_str(), p.stage)).collect();
    assert_eq!(
        stages,
        [
            ("o-bounced", PaymentStage::Rejected),
            ("o-debited", PaymentStage::Debited),
            ("o-refunded", PaymentStage::Refunded),
            ("o-rejected", PaymentStage::Rejected),
            ("o-requested", PaymentStage::RefundRequested),
        ]
    );
    assert_eq!(state.payments["o-rejected"].merchant_account_id, "", "a refused payment never reached a merchant");
    assert_eq!(
        state.applied_from.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        [("account_009", 4), ("merchant", 12)]
    );
    assert_eq!(state.compensated.iter().map(String::as_str).collect::<Vec<_>>(), ["payment-o-bounced", "t-1"]);
    // 1000 - 100.10 - 50 - 20 + 20 + 0.99 - 10 + 10 - 7 + 7
    assert_eq!(state.balance, d("850.89"));
    assert_eq!(state.status, AccountStatus::Frozen);
}

#[test]
fn snapshot_state_survives_a_serde_json_round_trip() {
    let root = busy_account();
    let state = root.state().clone();
    let json = serde_json::to_string(&state).expect("serialize");
    let back: Account = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, state);
    assert_eq!(back.balance.to_string(), "850.89", "the scale survives too");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["balance"], serde_json::json!("850.89"), "a balance is a string, not a float");
    assert_eq!(value["status"], serde_json::json!("frozen"));
    assert_eq!(value["currency"], serde_json::json!("CNY"));
    assert_eq!(value["payments"]["o-requested"]["stage"], serde_json::json!("refund_requested"));

    // The default (not opened) state round-trips as well.
    let fresh: Account = serde_json::from_value(serde_json::to_value(Account::default()).expect("json")).expect("back");
    assert_eq!(fresh, Account::default());
}

#[test]
fn snapshot_plus_tail_equals_a_full_replay() {
    let root = busy_account();
    let events = root.uncommitted();
    for cut in 0..=events.len() {
        let mut head = AggregateRoot::<Account>::new("account_001");
        head.replay(&events[..cut]);
        let snapshot: Account =
            serde_json::from_str(&serde_json::to_string(head.state()).expect("serialize")).expect("deserialize");
        let mut restored = AggregateRoot::from_snapshot("account_001", snapshot, cut as u64);
        restored.replay(&events[cut..]);
        assert_eq!(restored.state(), root.state(), "snapshot at {cut}");
        assert_eq!(restored.version(), root.version());
    }
}

// --------------------------------------------------------------- property

#[derive(Debug, Clone)]
enum Op {
    Deposit(Decimal),
    Withdraw(Decimal),
    Transfer(Decimal),
    /// Withdraws exactly the current balance (so `Close` gets a chance).
    WithdrawAll,
    Freeze,
    Unfreeze,
    Close,
}

fn amount_strategy() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        8 => (1i64..=50_000).prop_map(|cents| Decimal::new(cents, 2)),
        1 => Just(Decimal::ZERO),
        1 => (1i64..=5_000).prop_map(|cents| Decimal::new(-cents, 2)),
        // Thousandths: payable only when they are whole cents.
        1 => (1i64..=5_000).prop_map(|mills| Decimal::new(mills, 3)),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => amount_strategy().prop_map(Op::Deposit),
        4 => amount_strategy().prop_map(Op::Withdraw),
        3 => amount_strategy().prop_map(Op::Transfer),
        1 => Just(Op::WithdrawAll),
        1 => Just(Op::Freeze),
        1 => Just(Op::Unfreeze),
        1 => Just(Op::Close),
    ]
}

/// What the rules say a command does: move the balance by a delta and/or
/// change the status, change nothing, or be refused.
#[derive(Debug, PartialEq)]
enum Expect {
    Moves(Decimal),
    Becomes(AccountStatus),
    Nothing,
    Refused,
}

fn expect(status: AccountStatus, balance: Decimal, op: &Op) -> Expect {
    use AccountStatus as S;
    let payable = |a: Decimal| a > Decimal::ZERO && a.normalize().scale() <= 2;
    match op {
        Op::Deposit(a) if status == S::Active && payable(*a) => Expect::Moves(*a),
        Op::Withdraw(a) | Op::Transfer(a) if status == S::Active && payable(*a) && *a <= balance => Expect::Moves(-*a),
        Op::WithdrawAll if status == S::Active && payable(balance) => Expect::Moves(-balance),
        Op::Deposit(_) | Op::Withdraw(_) | Op::Transfer(_) | Op::WithdrawAll => Expect::Refused,
        Op::Freeze => match status {
            S::Active => Expect::Becomes(S::Frozen),
            S::Frozen => Expect::Nothing,
            _ => Expect::Refused,
        },
        Op::Unfreeze => match status {
            S::Frozen => Expect::Becomes(S::Active),
            S::Active => Expect::Nothing,
            _ => Expect::Refused,
        },
        Op::Close => match status {
            S::Closed => Expect::Nothing,
            _ if balance.is_zero() => Expect::Becomes(S::Closed),
            _ => Expect::Refused,
        },
    }
}

#[test]
fn random_command_sequences_keep_balance_and_events_consistent() {
    let config = Config { cases: 256, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let strategy =
        ((0i64..=100_000).prop_map(|cents| Decimal::new(cents, 2)), prop::collection::vec(op_strategy(), 0..40));
    let result = runner.run(&strategy, |(initial, ops)| {
        let mut root = AggregateRoot::<Account>::new("account_001");
        root.execute(C::Open { account_holder: "张三".into(), initial_balance: Money::new(initial, Currency::USD) })
            .map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
        let (mut deposits, mut withdrawals, mut transfers) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        let mut status = AccountStatus::Active;
        for (i, op) in ops.iter().enumerate() {
            let before = root.state().balance;
            let money = |a: &Decimal| Money::new(*a, Currency::USD);
            let command = match op {
                Op::Deposit(a) => deposit(money(a)),
                Op::Withdraw(a) => withdraw(money(a)),
                Op::WithdrawAll => withdraw(money(&before)),
                Op::Transfer(a) => C::Transfer {
                    transfer_id: format!("t-{i}"),
                    target_account_id: "account_002".into(),
                    amount: money(a),
                    description: "".into(),
                },
                Op::Freeze => C::Freeze { reason: format!("step {i}") },
                Op::Unfreeze => C::Unfreeze,
                Op::Close => C::Close,
            };
            let expected = expect(status, before, op);
            let outcome = root.execute(command).map(<[AccountEvent]>::to_vec);
            match (&expected, &outcome) {
                (Expect::Refused, Err(_)) => {}
                (Expect::Nothing, Ok(events)) => prop_assert!(events.is_empty(), "{op:?}: {events:?}"),
                (Expect::Becomes(s), Ok(events)) => {
                    prop_assert_eq!(events.len(), 1);
                    status = *s;
                }
                (Expect::Moves(delta), Ok(events)) => {
                    let [event] = &events[..] else {
                        return Err(TestCaseError::fail(format!("{op:?}: {events:?}")));
                    };
                    let (old, new) = match event {
                        E::MoneyDeposited { old_balance, new_balance, .. } => {
                            deposits += *delta;
                            (*old_balance, *new_balance)
                        }
                        E::MoneyWithdrawn { old_balance, new_balance, .. } => {
                            withdrawals -= *delta;
                            (*old_balance, *new_balance)
                        }
                        E::MoneyTransferredOut { old_balance, new_balance, purpose, cause, .. } => {
                            prop_assert_eq!(purpose, &TransferPurpose::Transfer);
                            prop_assert!(cause.is_none());
                            transfers -= *delta;
                            (*old_balance, *new_balance)
                        }
                        other => return Err(TestCaseError::fail(format!("{op:?}: unexpected {other:?}"))),
                    };
                    prop_assert_eq!(old, before);
                    prop_assert_eq!(new, before + *delta);
                }
                _ => {
                    return Err(TestCaseError::fail(format!(
                        "{op:?} at {before} ({status:?}): expected {expected:?}, got {outcome:?}"
                    )));
                }
            }
            let state = root.state();
            prop_assert!(state.balance >= Decimal::ZERO, "overdrawn: {}", state.balance);
            prop_assert_eq!(state.balance, initial + deposits - withdrawals - transfers);
            prop_assert_eq!(state.status, status);
        }
        // The state never drifts from its events.
        let mut replayed = AggregateRoot::<Account>::new("account_001");
        replayed.replay(root.uncommitted());
        prop_assert_eq!(replayed.state(), root.state());
        prop_assert_eq!(replayed.version(), root.version());
        prop_assert_eq!(root.version(), root.uncommitted().len() as u64);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

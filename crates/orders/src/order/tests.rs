//! Given/when/then for every command and rule of the Order aggregate.

use domain_core::testkit::AggregateTest;
use domain_core::{Currency, Envelope, Money};

use super::*;

fn money(amount: &str, currency: &str) -> Money {
    Money::new(amount.parse().expect("decimal"), currency.parse().expect("currency"))
}

fn cny(amount: &str) -> Money {
    money(amount, "CNY")
}

fn customer() -> CustomerInfo {
    CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", "13800138000").expect("the seed's customer")
}

fn created() -> OrderEvent {
    OrderEvent::OrderCreated { customer: customer(), currency: Currency::CNY }
}

fn item(product_id: &str, quantity: u32, unit_price: &str) -> OrderEvent {
    OrderEvent::OrderItemAdded { product_id: product_id.into(), quantity, unit_price: cny(unit_price) }
}

/// The seed's items: 2 x 99.99 and 1 x 199.99.
fn seed_items() -> Vec<OrderEvent> {
    vec![item("product_001", 2, "99.99"), item("product_002", 1, "199.99")]
}

fn confirmed() -> OrderEvent {
    OrderEvent::OrderConfirmed {
        customer_id: "cust_123".into(),
        payment_account_id: "cust_123".into(),
        total_amount: cny("399.97"),
        item_count: 2,
    }
}

fn paid() -> OrderEvent {
    OrderEvent::OrderPaid { amount: cny("399.97") }
}

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped { shipping_address: "北京市朝阳区xxx街道xxx号".into() }
}

fn cancelled(payment_account_id: Option<&str>, was_paid: bool) -> OrderEvent {
    OrderEvent::OrderCancelled {
        reason: "changed my mind".into(),
        customer_id: "cust_123".into(),
        payment_account_id: payment_account_id.map(str::to_owned),
        was_paid,
    }
}

fn pending() -> AggregateTest<Order> {
    AggregateTest::given(vec![created()]).and(seed_items())
}

fn confirmed_order() -> AggregateTest<Order> {
    pending().and(vec![confirmed()])
}

fn paid_order() -> AggregateTest<Order> {
    confirmed_order().and(vec![paid()])
}

fn shipped_order() -> AggregateTest<Order> {
    paid_order().and(vec![shipped()])
}

fn delivered_order() -> AggregateTest<Order> {
    shipped_order().and(vec![OrderEvent::OrderDelivered {}])
}

fn cancelled_order() -> AggregateTest<Order> {
    confirmed_order().and(vec![cancelled(Some("cust_123"), false)])
}

fn add(product_id: &str, quantity: u32, unit_price: Money) -> OrderCommand {
    OrderCommand::AddItem { product_id: product_id.into(), quantity, unit_price }
}

fn invalid_state(action: &'static str, status: OrderStatus) -> impl FnOnce(&OrderError) -> bool {
    move |e| *e == OrderError::InvalidState { action, status }
}

#[test]
fn the_seeds_story_totals_exactly_and_ships_after_payment() {
    let root = AggregateTest::<Order>::given_no_history()
        .and_commands([
            OrderCommand::Create { customer: customer(), currency: Currency::CNY },
            add("product_001", 2, cny("99.99")),
            add("product_002", 1, cny("199.99")),
        ])
        .when(OrderCommand::Confirm { payment_account_id: None })
        .then_expect_events(vec![confirmed()]);
    assert_eq!(root.state().total().map(|t| t.amount.to_string()), Some("399.97".to_owned()));
    assert_eq!(root.state().items()[0].total_price(), Ok(cny("199.98")));

    let root = confirmed_order()
        .and_commands([OrderCommand::MarkPaid { amount: cny("399.97") }])
        .when(OrderCommand::Ship { shipping_address: "北京市朝阳区xxx街道xxx号".into() })
        .then_expect_events(vec![shipped()]);
    let order = root.state();
    assert_eq!(order.status(), OrderStatus::Shipped);
    assert_eq!(order.status().to_string(), "shipped");
    assert_eq!(order.shipping_address(), Some("北京市朝阳区xxx街道xxx号"));
    assert_eq!(order.paid_amount(), Some(cny("399.97")));
    assert_eq!(order.customer().map(CustomerInfo::name), Some("张三"));
}

#[test]
fn create_opens_a_pending_order_once() {
    let root = AggregateTest::<Order>::given_no_history()
        .when(OrderCommand::Create { customer: customer(), currency: Currency::CNY })
        .then_expect_events(vec![created()]);
    assert!(root.state().exists());
    assert_eq!(root.state().status(), OrderStatus::Pending);
    assert_eq!(root.state().total(), Some(cny("0.00")));
    AggregateTest::<Order>::given(vec![created()])
        .when(OrderCommand::Create { customer: customer(), currency: Currency::USD })
        .then_expect_error(|e| *e == OrderError::AlreadyCreated);
}

#[test]
fn nothing_but_create_works_before_the_order_exists() {
    let commands = [
        add("p", 1, cny("1.00")),
        OrderCommand::Confirm { payment_account_id: None },
        OrderCommand::MarkPaid { amount: cny("1.00") },
        OrderCommand::RecordPaymentRejected { reason: "insufficient_funds".into() },
        OrderCommand::Ship { shipping_address: "x".into() },
        OrderCommand::Deliver,
        OrderCommand::Cancel { reason: "x".into() },
        OrderCommand::RecordRefund { amount: cny("1.00") },
    ];
    for command in commands {
        AggregateTest::<Order>::given_no_history().when(command).then_expect_error(|e| *e == OrderError::NotCreated);
    }
    assert_eq!(Order::default().total(), None);
}

#[test]
fn add_item_records_a_line_and_trims_the_product_id() {
    let root = AggregateTest::<Order>::given(vec![created()])
        .when(add(" product_001 ", 2, cny("99.99")))
        .then_expect_events(vec![item("product_001", 2, "99.99")]);
    assert_eq!(root.state().total(), Some(cny("199.98")));
    pending()
        .when(add("product_001", 1, cny("99.99")))
        .then_events(|e| assert_eq!(e, [item("product_001", 1, "99.99")], "the same product again is another line"));
}

#[test]
fn add_item_refuses_bad_quantities_prices_and_currencies() {
    let given = || AggregateTest::<Order>::given(vec![created()]);
    given().when(add("p", 0, cny("1.00"))).then_expect_error(|e| *e == OrderError::ZeroQuantity);
    given().when(add("  ", 1, cny("1.00"))).then_expect_error(|e| *e == OrderError::EmptyProductId);
    given().when(add("p", 1, cny("0"))).then_expect_error(|e| matches!(e, OrderError::NonPositiveAmount(_)));
    given().when(add("p", 1, cny("-5.00"))).then_expect_error(|e| matches!(e, OrderError::NonPositiveAmount(_)));
    given()
        .when(add("p", 1, cny("9.999")))
        .then_expect_error(|e| matches!(e, OrderError::TooPrecise { max_digits: 2, .. }));
    given()
        .when(add("p", 1, money("1.00", "USD")))
        .then_expect_error(|e| *e == OrderError::CurrencyMismatch { order: Currency::CNY, given: Currency::USD });
    given().when(add("p", 1, cny("99.990"))).then_events(|e| assert_eq!(e.len(), 1));
}

#[test]
fn zero_and_three_digit_currencies_have_their_own_precision() {
    let jpy = "JPY".parse::<Currency>().expect("currency");
    let kwd = "KWD".parse::<Currency>().expect("currency");
    let open =
        |currency| AggregateTest::<Order>::given(vec![OrderEvent::OrderCreated { customer: customer(), currency }]);
    open(jpy).when(add("p", 1, money("1000", "JPY"))).then_events(|e| assert_eq!(e.len(), 1));
    open(jpy)
        .when(add("p", 1, money("999.5", "JPY")))
        .then_expect_error(|e| matches!(e, OrderError::TooPrecise { max_digits: 0, .. }));
    open(kwd).when(add("p", 3, money("1.125", "KWD"))).then_events(|e| assert_eq!(e.len(), 1));
    open(kwd)
        .when(add("p", 1, money("1.1255", "KWD")))
        .then_expect_error(|e| matches!(e, OrderError::TooPrecise { max_digits: 3, .. }));
}

#[test]
fn a_total_that_would_overflow_is_refused() {
    let huge = cny("50000000000000000000000000000");
    AggregateTest::<Order>::given(vec![created()])
        .when(add("p", 2, huge))
        .then_expect_error(|e| *e == OrderError::AmountOverflow);
    AggregateTest::<Order>::given(vec![
        created(),
        OrderEvent::OrderItemAdded { product_id: "p".into(), quantity: 1, unit_price: huge },
    ])
    .when(add("q", 1, huge))
    .then_expect_error(|e| *e == OrderError::AmountOverflow);
}

#[test]
fn items_can_only_be_added_while_pending() {
    confirmed_order()
        .when(add("p", 1, cny("1.00")))
        .then_expect_error(invalid_state("add items to", OrderStatus::Confirmed));
    cancelled_order()
        .when(add("p", 1, cny("1.00")))
        .then_expect_error(invalid_state("add items to", OrderStatus::Cancelled));
}

#[test]
fn confirm_needs_items_and_pays_from_the_customers_account_by_default() {
    AggregateTest::<Order>::given(vec![created()])
        .when(OrderCommand::Confirm { payment_account_id: None })
        .then_expect_error(|e| *e == OrderError::EmptyOrder);
    let root = pending()
        .when(OrderCommand::Confirm { payment_account_id: Some(" family_account ".into()) })
        .then_expect_events(vec![OrderEvent::OrderConfirmed {
            customer_id: "cust_123".into(),
            payment_account_id: "family_account".into(),
            total_amount: cny("399.97"),
            item_count: 2,
        }]);
    assert_eq!(root.state().payment_account_id(), Some("family_account"));
    pending()
        .when(OrderCommand::Confirm { payment_account_id: Some("two words".into()) })
        .then_expect_error(|e| matches!(e, OrderError::InvalidPaymentAccount { .. }));
    confirmed_order()
        .when(OrderCommand::Confirm { payment_account_id: None })
        .then_expect_error(invalid_state("confirm", OrderStatus::Confirmed));
}

#[test]
fn mark_paid_needs_a_confirmed_order_and_the_exact_total() {
    pending()
        .when(OrderCommand::MarkPaid { amount: cny("399.97") })
        .then_expect_error(|e| *e == OrderError::PaymentBeforeConfirmation);
    confirmed_order()
        .when(OrderCommand::MarkPaid { amount: cny("399.96") })
        .then_expect_error(|e| *e == OrderError::PaymentAmountMismatch { expected: cny("399.97"), got: cny("399.96") });
    confirmed_order()
        .when(OrderCommand::MarkPaid { amount: money("399.97", "USD") })
        .then_expect_error(|e| matches!(e, OrderError::PaymentAmountMismatch { .. }));
    let root =
        confirmed_order().when(OrderCommand::MarkPaid { amount: cny("399.97") }).then_expect_events(vec![paid()]);
    assert_eq!(root.state().status(), OrderStatus::Paid);
    confirmed_order()
        .when(OrderCommand::MarkPaid { amount: cny("399.970") })
        .then_events(|e| assert_eq!(e.len(), 1, "the same amount written with another scale"));
}

#[test]
fn mark_paid_repeats_and_late_captures_change_nothing() {
    for given in [paid_order(), shipped_order(), delivered_order(), cancelled_order()] {
        given.when(OrderCommand::MarkPaid { amount: cny("399.97") }).then_nothing();
    }
}

#[test]
fn a_rejected_payment_cancels_a_confirmed_order_once() {
    let reject = || OrderCommand::RecordPaymentRejected { reason: "insufficient_funds".into() };
    let root = confirmed_order()
        .when(reject())
        .then_expect_events(vec![OrderEvent::OrderPaymentRejected { reason: "insufficient_funds".into() }]);
    assert_eq!(root.state().status(), OrderStatus::Cancelled);
    assert_eq!(root.state().cancellation_reason(), Some("insufficient_funds"));
    confirmed_order().and(vec![OrderEvent::OrderPaymentRejected { reason: "x".into() }]).when(reject()).then_nothing();
    cancelled_order().when(reject()).then_nothing();
    pending().when(reject()).then_expect_error(|e| *e == OrderError::PaymentBeforeConfirmation);
    for (given, status) in [
        (paid_order(), OrderStatus::Paid),
        (shipped_order(), OrderStatus::Shipped),
        (delivered_order(), OrderStatus::Delivered),
    ] {
        given.when(reject()).then_expect_error(move |e| *e == OrderError::PaymentAlreadyCaptured { status });
    }
}

#[test]
fn only_paid_orders_ship_and_only_to_an_address() {
    let ship = |to: &str| OrderCommand::Ship { shipping_address: to.into() };
    for (given, status) in [(pending(), OrderStatus::Pending), (confirmed_order(), OrderStatus::Confirmed)] {
        given.when(ship("北京市朝阳区xxx街道xxx号")).then_expect_error(move |e| *e == OrderError::NotPaid { status });
    }
    paid_order().when(ship("   ")).then_expect_error(|e| *e == OrderError::EmptyShippingAddress);
    paid_order().when(ship(" 北京市朝阳区xxx街道xxx号\n")).then_expect_events(vec![shipped()]);
    cancelled_order().when(ship("北京")).then_expect_error(invalid_state("ship", OrderStatus::Cancelled));
    shipped_order().when(ship("北京")).then_expect_error(invalid_state("ship", OrderStatus::Shipped));
    delivered_order().when(ship("北京")).then_expect_error(invalid_state("ship", OrderStatus::Delivered));
}

#[test]
fn only_shipped_orders_are_delivered() {
    let root = shipped_order().when(OrderCommand::Deliver).then_expect_events(vec![OrderEvent::OrderDelivered {}]);
    assert!(root.state().status().is_terminal());
    paid_order().when(OrderCommand::Deliver).then_expect_error(invalid_state("deliver", OrderStatus::Paid));
    delivered_order().when(OrderCommand::Deliver).then_expect_error(invalid_state("deliver", OrderStatus::Delivered));
    cancelled_order().when(OrderCommand::Deliver).then_expect_error(invalid_state("deliver", OrderStatus::Cancelled));
}

#[test]
fn cancel_tells_accounts_what_to_refund() {
    let cancel = || OrderCommand::Cancel { reason: " changed my mind ".into() };
    pending().when(cancel()).then_expect_events(vec![cancelled(None, false)]);
    confirmed_order().when(cancel()).then_expect_events(vec![cancelled(Some("cust_123"), false)]);
    let root = paid_order().when(cancel()).then_expect_events(vec![cancelled(Some("cust_123"), true)]);
    assert_eq!(root.state().status(), OrderStatus::Cancelled);
    pending().when(OrderCommand::Cancel { reason: " ".into() }).then_expect_error(|e| *e == OrderError::EmptyReason);
    shipped_order().when(cancel()).then_expect_error(invalid_state("cancel", OrderStatus::Shipped));
    delivered_order().when(cancel()).then_expect_error(invalid_state("cancel", OrderStatus::Delivered));
    cancelled_order().when(cancel()).then_expect_error(invalid_state("cancel", OrderStatus::Cancelled));
}

#[test]
fn a_refund_is_recorded_once_on_a_cancelled_order() {
    let refund = |amount: Money| OrderCommand::RecordRefund { amount };
    let paid_then_cancelled = || paid_order().and(vec![cancelled(Some("cust_123"), true)]);
    let root = paid_then_cancelled()
        .when(refund(cny("399.97")))
        .then_expect_events(vec![OrderEvent::OrderRefunded { amount: cny("399.97") }]);
    assert_eq!(root.state().refunded_amount(), Some(cny("399.97")));
    paid_then_cancelled()
        .and(vec![OrderEvent::OrderRefunded { amount: cny("399.97") }])
        .when(refund(cny("399.97")))
        .then_nothing();
    paid_then_cancelled()
        .when(refund(money("399.97", "USD")))
        .then_expect_error(|e| matches!(e, OrderError::CurrencyMismatch { .. }));
    paid_then_cancelled().when(refund(cny("0"))).then_expect_error(|e| matches!(e, OrderError::NonPositiveAmount(_)));
    paid_order().when(refund(cny("399.97"))).then_expect_error(invalid_state("record a refund for", OrderStatus::Paid));
}

#[test]
fn a_delivered_order_refuses_every_change() {
    let commands = [
        add("p", 1, cny("1.00")),
        OrderCommand::Confirm { payment_account_id: None },
        OrderCommand::Ship { shipping_address: "x".into() },
        OrderCommand::Deliver,
        OrderCommand::Cancel { reason: "x".into() },
        OrderCommand::RecordRefund { amount: cny("1.00") },
        OrderCommand::RecordPaymentRejected { reason: "x".into() },
    ];
    for command in commands {
        delivered_order().when(command).then_expect_error(|e| {
            matches!(e, OrderError::InvalidState { .. } | OrderError::PaymentAlreadyCaptured { .. })
        });
    }
}

#[test]
fn a_cancelled_order_refuses_every_change_but_the_saga_repeats() {
    let refused = [
        add("p", 1, cny("1.00")),
        OrderCommand::Confirm { payment_account_id: None },
        OrderCommand::Ship { shipping_address: "x".into() },
        OrderCommand::Deliver,
        OrderCommand::Cancel { reason: "x".into() },
    ];
    for command in refused {
        cancelled_order()
            .when(command)
            .then_expect_error(|e| matches!(e, OrderError::InvalidState { status: OrderStatus::Cancelled, .. }));
    }
}

#[test]
fn payloads_keep_the_contract_with_accounts() {
    let data = |e: &OrderEvent| {
        let env = Envelope::new("order_001", 1, e).expect("envelope");
        (env.event_type.to_string(), env.data)
    };
    assert_eq!(
        data(&confirmed()),
        (
            "orders.OrderConfirmed.v1".to_owned(),
            serde_json::json!({"customer_id":"cust_123","payment_account_id":"cust_123",
                "total_amount":{"amount":"399.97","currency":"CNY"},"item_count":2})
        )
    );
    assert_eq!(
        data(&cancelled(Some("cust_123"), true)),
        (
            "orders.OrderCancelled.v1".to_owned(),
            serde_json::json!({"reason":"changed my mind","customer_id":"cust_123","payment_account_id":"cust_123","was_paid":true})
        )
    );
    assert_eq!(data(&created()).1["customer"]["customer_id"], "cust_123");
    assert_eq!(data(&created()).1["currency"], "CNY");
    assert_eq!(
        data(&item("product_001", 2, "99.99")).1,
        serde_json::json!({"product_id":"product_001","quantity":2,
        "unit_price":{"amount":"99.99","currency":"CNY"}})
    );
    assert_eq!(data(&OrderEvent::OrderDelivered {}), ("orders.OrderDelivered.v1".to_owned(), serde_json::json!({})));
}

#[test]
fn state_survives_a_snapshot() {
    let root = paid_order()
        .and(vec![cancelled(Some("cust_123"), true)])
        .when(OrderCommand::RecordRefund { amount: cny("399.97") })
        .then_events(|_| {});
    let json = serde_json::to_value(root.state()).expect("snapshot");
    assert_eq!(serde_json::from_value::<Order>(json).expect("restore"), *root.state());
}

//! The seed's commerce scenarios on the real contexts, and a generated
//! workload through both sagas. Each returns what the seed function prints,
//! under snake_case versions of its labels, for `summary.json`. They run on
//! a [`CommercePort`]: the contexts in this process, or their services.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use accounts::{Account, AccountCommand, AccountEvent};
use domain_core::Aggregate;
use domain_core::seeded::SplitMix64;
use domain_core::{Currency, Money};
use orders::{CustomerInfo, OrderCommand, OrderStatus};
use serde_json::{Value, json};

use crate::commerce::{CommercePort, Recorded};
use crate::error::Result;

/// How long one settle may take in a scenario.
const SETTLE: Duration = Duration::from_secs(300);
/// The seed's shipping address.
pub const SEED_ADDRESS: &str = "北京市朝阳区xxx街道xxx号";
/// The fixed seed of the generated workload.
pub const WORKLOAD_SEED: u64 = 20_261_201;

fn cny(s: &str) -> Result<Money> {
    Ok(Money::parse(s, Currency::CNY)?)
}

/// `demo_domain_driven_modeling`: the seed's order for 张三, confirmed, paid
/// from the customer's account over the bus, shipped to the seed's address.
pub async fn domain_driven_modeling(c: &mut dyn CommercePort) -> Result<Value> {
    let merchant = "merchant";
    ensure_open(c, merchant, "商家").await?;
    c.open_account("cust_123", "张三", cny("1000")?).await?;
    let customer = CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", "13800138000")?;
    let id = "order_001";
    c.run_order(id, OrderCommand::Create { customer, currency: Currency::CNY }).await?;
    for (product, quantity, price) in [("product_001", 2, "99.99"), ("product_002", 1, "199.99")] {
        let unit_price = cny(price)?;
        c.run_order(id, OrderCommand::AddItem { product_id: product.into(), quantity, unit_price }).await?;
    }
    c.run_order(id, OrderCommand::Confirm { payment_account_id: None }).await?;
    c.wait_settled(SETTLE).await?;
    c.run_order(id, OrderCommand::Ship { shipping_address: SEED_ADDRESS.into() }).await?;
    c.wait_settled(SETTLE).await?;
    let order = c.load_order(id).await?;
    let history: Vec<Value> = c
        .order_history(id)
        .await?
        .into_iter()
        .map(|e| json!({ "event_type": e.event_type.name(), "data": e.data }))
        .collect();
    let payer = c.load_account("cust_123").await?;
    let merchant_account = c.load_account(merchant).await?;
    let state = order.state();
    Ok(json!({
        "order_id": id,
        "generated_events": history,
        "order_status": state.status().as_str(),
        "total_amount": state.total().map(|t| t.to_minor_string()),
        "shipping_address": state.shipping_address(),
        "paid_through_accounts": {
            "payer_account": "cust_123",
            "payer_balance": payer.state().balance_money().map(|m| m.to_minor_string()),
            "merchant_account": merchant,
            "merchant_balance": merchant_account.state().balance_money().map(|m| m.to_minor_string()),
        },
    }))
}

/// `demo_event_sourcing`: the seed's account story, reloaded from the store
/// (snapshot + events), and the transfer's target really credited.
pub async fn event_sourcing(c: &mut dyn CommercePort) -> Result<Value> {
    let usd = |s: &str| -> Result<Money> { Ok(Money::parse(s, Currency::USD)?) };
    c.open_account("account_002", "李四", usd("0")?).await?;
    c.open_account("account_001", "张三", usd("1000.0")?).await?;
    let a = "account_001";
    c.run_account(a, AccountCommand::Deposit { amount: usd("500.0")?, description: "工资".into() }).await?;
    c.run_account(a, AccountCommand::Withdraw { amount: usd("200.0")?, description: "购物".into() }).await?;
    c.start_transfer(a, "account_002", usd("300.0")?, "转账给朋友").await?;
    c.wait_settled(SETTLE).await?;
    // A fresh load from the store: nothing of the running aggregate is reused.
    let reloaded = c.load_account(a).await?;
    let target = c.load_account("account_002").await?;
    let recorded = c.account_history(a).await?;
    let history: Vec<Value> = recorded
        .iter()
        .map(|e| {
            json!({
                "timestamp": e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "event_type": e.event_type.name(),
                "data": e.data,
            })
        })
        .collect();
    let s = reloaded.state();
    let balances = json!({
        "account_001": balance_over_time(&recorded)?,
        "account_002": balance_over_time(&c.account_history("account_002").await?)?,
    });
    Ok(json!({
        "balance_over_time": balances,
        "account_holder": s.account_holder,
        "balance": s.balance_money().map(|m| m.to_minor_string()),
        "currency": s.currency.map(|c| c.to_string()),
        "version": reloaded.version(),
        "event_history": history,
        "account_002": {
            "balance": target.state().balance_money().map(|m| m.to_minor_string()),
            "credited_by": "MoneyTransferredIn",
        },
    }))
}

/// The account's balance after each of its stored events, replayed:
/// `[{timestamp, event_type, balance}]`, oldest first.
fn balance_over_time(history: &[Recorded]) -> Result<Vec<Value>> {
    let mut state = Account::default();
    let mut out = Vec::new();
    for e in history {
        let event: AccountEvent = domain_core::event::from_wire(&e.event_type, &e.data)?;
        state.apply(&event);
        out.push(json!({
            "timestamp": e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "event_type": e.event_type.name(),
            "balance": state.balance_money().map(|m| m.to_minor_string()),
        }));
    }
    Ok(out)
}

/// Size of the generated workload.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadSize {
    pub customers: usize,
    pub orders: usize,
    pub transfers: usize,
}

impl Default for WorkloadSize {
    fn default() -> Self {
        Self { customers: 300, orders: 2000, transfers: 600 }
    }
}

impl WorkloadSize {
    /// `orders` orders, with customers and transfers in the default's
    /// proportions (at least 10 customers).
    pub fn scaled(orders: usize) -> Self {
        let d = Self::default();
        Self {
            customers: (orders * d.customers / d.orders).max(10),
            orders,
            transfers: orders * d.transfers / d.orders,
        }
    }
}

/// A fixed-seed workload through both sagas: customers with random
/// balances (some too poor, some frozen, a few in USD), orders that are
/// paid, rejected, cancelled before or after payment, shipped and
/// delivered, and transfers of which some fail for every reason.
///
/// `progress(done, total, message)` counts accounts, orders and transfers.
pub async fn workload(
    c: &mut dyn CommercePort,
    size: WorkloadSize,
    mut progress: impl FnMut(u64, u64, &str) + Send,
) -> Result<Value> {
    let started = Instant::now();
    let total = (size.customers + size.orders + size.transfers) as u64;
    let mut rng = SplitMix64::new(WORKLOAD_SEED);
    ensure_open(c, "merchant", "商家").await?;
    let mut customers = Vec::with_capacity(size.customers);
    for i in 0..size.customers {
        let id = format!("w_cust_{i:04}");
        let dollars = rng.chance(0.05);
        // Most can pay for their orders; one in ten is nearly broke.
        let whole = if rng.chance(0.1) { rng.below(100) } else { 3000 + rng.below(20_000) };
        let balance = format!("{whole}.{:02}", rng.below(100));
        let money = if dollars { Money::parse(&balance, Currency::USD)? } else { cny(&balance)? };
        c.open_account(&id, &format!("客户{i}"), money).await?;
        customers.push((id, dollars));
    }
    // Some accounts cannot take part: frozen, or closed (empty first).
    for (id, _) in customers.iter().filter(|_| rng.chance(0.03)) {
        c.run_account(id, AccountCommand::Freeze { reason: "review".into() }).await?;
    }
    for i in 0..size.customers / 50 {
        let id = format!("w_closed_{i:03}");
        c.open_account(&id, "已销户", cny("0")?).await?;
        c.run_account(&id, AccountCommand::Close).await?;
    }
    let opened = size.customers as u64;
    progress(opened, total, &format!("{} accounts opened", size.customers));

    let mut order_ids = Vec::with_capacity(size.orders);
    for n in 0..size.orders {
        let (customer, _) = rng.pick(&customers).clone();
        let id = format!("w_order_{n:05}");
        let info = CustomerInfo::new(&customer, "客户", format!("{customer}@example.com"), "13800138000")?;
        c.run_order(&id, OrderCommand::Create { customer: info, currency: Currency::CNY }).await?;
        for item in 0..1 + rng.below(3) {
            let price = cny(&format!("{}.{:02}", 1 + rng.below(300), rng.below(100)))?;
            let quantity = 1 + rng.below(3) as u32;
            c.run_order(
                &id,
                OrderCommand::AddItem { product_id: format!("product_{item:03}"), quantity, unit_price: price },
            )
            .await?;
        }
        if rng.chance(0.05) {
            c.run_order(&id, OrderCommand::Cancel { reason: "changed my mind".into() }).await?;
        } else {
            c.run_order(&id, OrderCommand::Confirm { payment_account_id: None }).await?;
        }
        order_ids.push(id);
        if n % 100 == 99 {
            c.wait_settled(SETTLE).await?;
            progress(opened + n as u64 + 1, total, &format!("{} orders placed", n + 1));
        }
    }
    c.wait_settled(SETTLE).await?;

    // Paid orders: most ship and are delivered, some are cancelled (refund).
    for id in &order_ids {
        if c.load_order(id).await?.state().status() != OrderStatus::Paid {
            continue;
        }
        if rng.chance(0.1) {
            c.run_order(id, OrderCommand::Cancel { reason: "customer asked for a refund".into() }).await?;
        } else {
            c.run_order(id, OrderCommand::Ship { shipping_address: SEED_ADDRESS.into() }).await?;
            c.run_order(id, OrderCommand::Deliver).await?;
        }
    }
    c.wait_settled(SETTLE).await?;
    let placed = opened + size.orders as u64;
    progress(placed, total, "orders shipped, delivered or cancelled");

    // Transfers, some of which must fail: missing, frozen or closed
    // targets, another currency, and some too large (refused at once).
    let mut refused_at_once = 0;
    for t in 0..size.transfers {
        if t % 100 == 99 {
            progress(placed + t as u64 + 1, total, &format!("{} transfers requested", t + 1));
        }
        let (from, _) = rng.pick(&customers).clone();
        let to = match rng.below(10) {
            0 => format!("w_missing_{}", rng.below(1000)),
            1 => format!("w_closed_{:03}", rng.below((size.customers / 50).max(1) as u64)),
            _ => rng.pick(&customers).0.clone(),
        };
        if to == from {
            continue;
        }
        let from_currency = c.load_account(&from).await?.state().currency.unwrap_or(Currency::CNY);
        let amount = Money::parse(&format!("{}.{:02}", 1 + rng.below(200), rng.below(100)), from_currency)?;
        if !c.start_transfer(&from, &to, amount, "workload").await? {
            refused_at_once += 1;
        }
    }
    c.wait_settled(SETTLE).await?;
    progress(total, total, "transfers settled");

    let mut per_status: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut cancelled: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut not_terminal = 0;
    let mut paid_total = Money::zero(Currency::CNY);
    for id in &order_ids {
        let order = c.load_order(id).await?;
        let s = order.state();
        *per_status.entry(s.status().as_str()).or_default() += 1;
        if !s.status().is_terminal() {
            not_terminal += 1;
        }
        if s.status() == OrderStatus::Cancelled {
            let why = if s.refunded_amount().is_some() {
                "refunded_after_payment"
            } else if s.payment_account_id().is_none() {
                "cancelled_before_confirmation"
            } else {
                "payment_rejected"
            };
            *cancelled.entry(why).or_default() += 1;
        }
        if s.status() == OrderStatus::Delivered
            && let Some(t) = s.total()
        {
            paid_total = paid_total.checked_add(t)?;
        }
    }
    let audit = c.audit().await?;
    Ok(json!({
        "seed": WORKLOAD_SEED,
        "customers": size.customers,
        "orders": size.orders,
        "orders_per_terminal_state": per_status,
        "cancelled_orders": cancelled,
        "orders_not_terminal": not_terminal,
        "delivered_revenue": paid_total.to_minor_string(),
        "transfers_requested": size.transfers,
        "transfers_refused_at_once": refused_at_once,
        "transfers_completed": audit.counts.transfers_completed,
        "transfers_compensated": audit.counts.transfers_compensated,
        "transfers_compensated_by_reason": audit.compensations,
        "payments_captured": audit.counts.payments_captured,
        "payments_rejected": audit.counts.payments_rejected,
        "refunds_issued": audit.counts.refunds_issued,
        "money_in_flight": audit.currencies.iter().map(|(c, t)| (c.clone(), t.in_flight.to_string())).collect::<BTreeMap<_, _>>(),
        "money_conserved": audit.money_conserved,
        "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    }))
}

/// Opens a CNY account with nothing in it unless it is open already.
async fn ensure_open(c: &mut dyn CommercePort, id: &str, holder: &str) -> Result<()> {
    if c.load_account(id).await?.state().status == accounts::AccountStatus::NotOpened {
        c.open_account(id, holder, cny("0")?).await?;
    }
    Ok(())
}

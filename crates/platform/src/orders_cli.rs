//! `platform orders ...`: the orders context from the command line, on
//! `DIR/orders`. `confirm` returns once the payment saga settled (paid, or
//! cancelled with the rejection), `cancel` once a refund did.

use std::path::Path;

use accounts::SagaConfig;
use domain_core::{AggregateRoot, Currency, Money};
use orders::{CustomerInfo, Order, OrderCommand, OrderRepository, OrderSummary};
use serde_json::{Value, json};

use crate::accounts_cli::{BusArgs, SETTLE_TIMEOUT, settled};
use crate::commerce::{Commerce, open_orders};
use crate::error::{Error, Result};
use crate::node::BusChoice;
use crate::output::{Format, table};

#[derive(Debug, clap::Subcommand)]
pub enum OrdersCommand {
    /// Open an order: `create order_001 --customer-id cust_123 --name 张三
    /// --email zhangsan@example.com --phone 13800138000`.
    Create {
        id: String,
        #[arg(long)]
        customer_id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        phone: String,
        /// ISO 4217 code every amount of the order is in.
        #[arg(long, default_value = "CNY")]
        currency: String,
    },
    /// Add an item: `add-item order_001 product_001 2 99.99`.
    AddItem { id: String, product_id: String, quantity: u32, unit_price: String },
    /// Fix the items and pay: debits the payment account (by default the
    /// account whose id is the customer id) over the payment saga.
    Confirm {
        id: String,
        /// Pay from this account instead of the customer's.
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,
    },
    /// Ship a paid order to an address.
    Ship { id: String, address: String },
    /// Mark a shipped order delivered.
    Deliver { id: String },
    /// Cancel a pending, confirmed or paid order (a paid one is refunded).
    Cancel {
        id: String,
        #[arg(long, default_value = "cancelled by the customer")]
        reason: String,
    },
    /// The order: status, items, total, address.
    Show { id: String },
    /// Every order of a customer, with status and total (the read model).
    ByCustomer { customer_id: String },
    /// Orders per day (UTC): created, paid, cancelled and the paid amount,
    /// per currency (the read model).
    Daily {
        /// First day, YYYY-MM-DD [default: 29 days before --to].
        #[arg(long, value_parser = parse_date)]
        from: Option<chrono::NaiveDate>,
        /// Last day, YYYY-MM-DD [default: today, UTC].
        #[arg(long, value_parser = parse_date)]
        to: Option<chrono::NaiveDate>,
    },
}

fn parse_date(text: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("`{text}` is not a date: use YYYY-MM-DD"))
}

/// Runs one orders command.
pub async fn run(command: OrdersCommand, bus: &BusArgs, data: &Path, format: Format) -> Result<()> {
    let choice = BusChoice::from_flag(bus.kafka.as_deref());
    let config = SagaConfig { merchant_account_id: bus.merchant.clone() };
    if let OrdersCommand::Daily { from, to } = &command {
        crate::accounts_cli::ensure_data(data)?;
        let orders = open_orders(data)?;
        let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
        let from = from.unwrap_or_else(|| to - chrono::Days::new(29));
        return print_days(&orders.daily_orders(from, to).await?, format);
    }
    if let OrdersCommand::Show { id: key } | OrdersCommand::ByCustomer { customer_id: key } = &command {
        let orders = match choice {
            // Over Kafka the consumers are elsewhere: read what is stored.
            BusChoice::Kafka(_) => {
                crate::accounts_cli::ensure_data(data)?;
                open_orders(data)?
            }
            // Sagas a killed command left unfinished finish first.
            BusChoice::InProcess => settled(data, config).await?.orders,
        };
        return match command {
            OrdersCommand::ByCustomer { .. } => print_summaries(key, &orders.find_by_customer(key).await?, format),
            _ => {
                let order = orders.get_by_id(key).await?.ok_or_else(|| Error::OrderNotFound(key.clone()))?;
                print_order(&order, format)
            }
        };
    }
    let mut commerce = Commerce::open(data, choice, config).await?;
    let (id, command) = match command {
        OrdersCommand::Create { id, customer_id, name, email, phone, currency } => {
            let customer = CustomerInfo::new(customer_id, name, email, phone)?;
            (id, OrderCommand::Create { customer, currency: currency.parse()? })
        }
        OrdersCommand::AddItem { id, product_id, quantity, unit_price } => {
            let currency = commerce.get_order(&id).await?.state().currency().unwrap_or(Currency::CNY);
            let unit_price = Money::parse(&unit_price, currency)?;
            (id, OrderCommand::AddItem { product_id, quantity, unit_price })
        }
        OrdersCommand::Confirm { id, account } => (id, OrderCommand::Confirm { payment_account_id: account }),
        OrdersCommand::Ship { id, address } => (id, OrderCommand::Ship { shipping_address: address }),
        OrdersCommand::Deliver { id } => (id, OrderCommand::Deliver),
        OrdersCommand::Cancel { id, reason } => (id, OrderCommand::Cancel { reason }),
        OrdersCommand::Show { id } | OrdersCommand::ByCustomer { customer_id: id } => {
            return Err(Error::Usage(format!("`{id}`: read-only commands are answered above")));
        }
        OrdersCommand::Daily { .. } => return Err(Error::Usage("read-only commands are answered above".into())),
    };
    commerce.order(&id, command).await?;
    commerce.settle(SETTLE_TIMEOUT).await?;
    let order = commerce.get_order(&id).await?;
    commerce.close().await?;
    print_order(&order, format)
}

/// An order as JSON: what the seed prints and what the saga did.
pub fn order_json(root: &AggregateRoot<Order>) -> Value {
    let s = root.state();
    let items: Vec<Value> = s
        .items()
        .iter()
        .map(|i| json!({ "product_id": i.product_id, "quantity": i.quantity, "unit_price": i.unit_price.to_minor_string() }))
        .collect();
    json!({
        "order_id": root.id(),
        "customer_id": s.customer().map(|c| c.customer_id().to_owned()),
        "order_status": s.status().as_str(),
        "items": items,
        "total_amount": s.total().map(|t| t.to_minor_string()),
        "currency": s.currency().map(|c| c.to_string()),
        "payment_account_id": s.payment_account_id(),
        "shipping_address": s.shipping_address(),
        "cancellation_reason": s.cancellation_reason(),
        "refunded_amount": s.refunded_amount().map(|m| m.to_minor_string()),
        "version": root.version(),
    })
}

fn print_order(root: &AggregateRoot<Order>, format: Format) -> Result<()> {
    let j = order_json(root);
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&j)?),
        Format::Table | Format::Csv => {
            let text = |v: &Value| {
                v.as_str().map_or_else(|| if v.is_null() { "-".into() } else { v.to_string() }, str::to_owned)
            };
            let keys = [
                "order_id",
                "customer_id",
                "order_status",
                "total_amount",
                "currency",
                "payment_account_id",
                "shipping_address",
                "cancellation_reason",
                "refunded_amount",
                "version",
            ];
            let rows: Vec<Vec<String>> = keys.iter().map(|k| vec![(*k).to_owned(), text(&j[*k])]).collect();
            crate::outln!("{}", table(&["field", "value"], &rows));
            let items: Vec<Vec<String>> = j["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| vec![text(&i["product_id"]), i["quantity"].to_string(), text(&i["unit_price"])])
                .collect();
            if !items.is_empty() {
                crate::outln!("\n{}", table(&["product", "quantity", "unit price"], &items));
            }
        }
    }
    Ok(())
}

fn print_days(days: &[orders::DailyOrders], format: Format) -> Result<()> {
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&days)?),
        Format::Table | Format::Csv => {
            if days.is_empty() {
                crate::outln!("no orders on those days");
                return Ok(());
            }
            let cells: Vec<Vec<String>> = days
                .iter()
                .map(|d| {
                    vec![
                        d.date.to_string(),
                        d.currency.to_string(),
                        d.created.to_string(),
                        d.paid.to_string(),
                        d.cancelled.to_string(),
                        d.paid_amount.to_minor_string(),
                    ]
                })
                .collect();
            crate::outln!("{}", table(&["date", "currency", "created", "paid", "cancelled", "paid amount"], &cells));
        }
    }
    Ok(())
}

fn print_summaries(customer_id: &str, rows: &[OrderSummary], format: Format) -> Result<()> {
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table | Format::Csv => {
            if rows.is_empty() {
                crate::outln!("no orders for customer `{customer_id}`");
                return Ok(());
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.order_id.clone(),
                        r.status.as_str().to_owned(),
                        r.total.to_minor_string(),
                        r.total.currency.to_string(),
                        r.item_count.to_string(),
                        r.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ]
                })
                .collect();
            crate::outln!("{}", table(&["order", "status", "total", "currency", "items", "updated"], &cells));
        }
    }
    Ok(())
}

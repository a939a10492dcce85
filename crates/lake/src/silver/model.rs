//! The silver tables: which events feed each, and how a column is read
//! from an event (its CloudEvent attributes or a JSON pointer into its
//! payload). The producers' crates are never used: the lake reads their
//! events as JSON, as any consumer of the bus would.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Scale of every money column (the largest minor unit of a currency is 3
/// digits; one more keeps unit prices times quantities exact).
pub const MONEY_SCALE: i8 = 4;
pub const MONEY_PRECISION: u8 = 38;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Float,
    /// A decimal (money); read from a JSON string ("399.97") or an integer.
    Money,
    /// UTC timestamp in microseconds.
    Time,
    Bool,
    /// Any JSON value, kept as its compact text.
    Json,
}

impl Kind {
    pub fn arrow(self) -> DataType {
        match self {
            Kind::Text | Kind::Json => DataType::Utf8,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
            Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Bool => DataType::Boolean,
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The event id (`ce_id`).
    Id,
    /// The aggregate id (`ce_subject`).
    Subject,
    /// The event's name (`OrderPaid`).
    Name,
    /// The event's full type (`orders.OrderPaid.v1`).
    Type,
    /// The event time (`ce_time`).
    Time,
    /// The event's date (`YYYY-MM-DD` of `ce_time`), the partition column.
    Date,
    /// The aggregate version.
    Version,
    /// The first JSON pointer that is present in the payload.
    Pointer(&'static [&'static str]),
    /// The order status an order event leaves the order in.
    OrderStatus,
    /// `quantity * unit_price` of an order item.
    LineAmount,
    /// Balance change of a ledger entry (`new_balance - old_balance`).
    BalanceChange,
    /// A point's time: its `timestamp` (nanoseconds) or else the event time.
    PointTime,
}

/// One column of a silver table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub source: Source,
}

const fn col(name: &'static str, kind: Kind, source: Source) -> Column {
    Column { name, kind, source }
}

/// A silver table and the events that feed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilverTable {
    pub name: &'static str,
    /// The topics' context (`orders`), or `None` for any.
    pub context: Option<&'static str>,
    /// Event names that go to this table.
    pub events: &'static [&'static str],
    pub columns: &'static [Column],
}

impl SilverTable {
    pub fn schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.columns.iter().map(|c| Field::new(c.name, c.kind.arrow(), true)).collect();
        fields.extend(lineage_fields());
        Arc::new(Schema::new(fields))
    }

    pub fn accepts(&self, context: &str, name: &str) -> bool {
        self.context.is_none_or(|c| c == context) && self.events.contains(&name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Columns every silver row carries back to its bronze record.
pub fn lineage_fields() -> Vec<Field> {
    vec![
        Field::new("_topic", DataType::Utf8, true),
        Field::new("_partition", DataType::Int32, true),
        Field::new("_offset", DataType::Int64, true),
    ]
}

/// The partition column of every silver table.
pub const DATE_COLUMN: &str = "event_date";

use Kind::{Float, Int, Json, Money, Text};
use Source::{BalanceChange, Date, Id, LineAmount, Name, OrderStatus, PointTime, Pointer, Subject, Version};

const ORDER_EVENTS: &[&str] = &[
    "OrderCreated",
    "OrderConfirmed",
    "OrderPaid",
    "OrderPaymentRejected",
    "OrderShipped",
    "OrderDelivered",
    "OrderCancelled",
    "OrderRefunded",
];

/// Status names the order events lead to (the seed's `OrderStatus`).
pub const ORDER_STATUSES: &[&str] =
    &["created", "confirmed", "paid", "payment_rejected", "shipped", "delivered", "cancelled", "refunded"];

pub fn order_status(event: &str) -> Option<&'static str> {
    ORDER_EVENTS.iter().position(|e| *e == event).map(|i| ORDER_STATUSES[i])
}

pub const ORDERS: SilverTable = SilverTable {
    name: "orders",
    context: Some("orders"),
    events: ORDER_EVENTS,
    columns: &[
        col("event_id", Text, Id),
        col("order_id", Text, Subject),
        col("event", Text, Name),
        col("status", Text, OrderStatus),
        col("event_time", Kind::Time, Source::Time),
        col("aggregate_version", Int, Version),
        col("customer_id", Text, Pointer(&["/customer/customer_id", "/customer_id"])),
        col("customer_name", Text, Pointer(&["/customer/name"])),
        col("payment_account_id", Text, Pointer(&["/payment_account_id"])),
        col("currency", Text, Pointer(&["/currency", "/total_amount/currency", "/amount/currency"])),
        col("total_amount", Money, Pointer(&["/total_amount/amount"])),
        col("amount", Money, Pointer(&["/amount/amount"])),
        col("item_count", Int, Pointer(&["/item_count"])),
        col("reason", Text, Pointer(&["/reason"])),
        col("shipping_address", Text, Pointer(&["/shipping_address"])),
        col(DATE_COLUMN, Text, Date),
    ],
};

pub const ORDER_ITEMS: SilverTable = SilverTable {
    name: "order_items",
    context: Some("orders"),
    events: &["OrderItemAdded"],
    columns: &[
        col("event_id", Text, Id),
        col("order_id", Text, Subject),
        col("product_id", Text, Pointer(&["/product_id"])),
        col("quantity", Int, Pointer(&["/quantity"])),
        col("unit_price", Money, Pointer(&["/unit_price/amount"])),
        col("currency", Text, Pointer(&["/unit_price/currency"])),
        col("line_amount", Money, LineAmount),
        col("event_time", Kind::Time, Source::Time),
        col("aggregate_version", Int, Version),
        col(DATE_COLUMN, Text, Date),
    ],
};

pub const ACCOUNT_LEDGER: SilverTable = SilverTable {
    name: "account_ledger",
    context: Some("accounts"),
    events: &[
        "AccountCreated",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "MoneyTransferredOut",
        "MoneyTransferredIn",
        "TransferRefunded",
    ],
    columns: &[
        col("event_id", Text, Id),
        col("account_id", Text, Subject),
        col("entry", Text, Name),
        col("amount", Money, Pointer(&["/amount/amount", "/initial_balance/amount"])),
        col("currency", Text, Pointer(&["/amount/currency", "/initial_balance/currency"])),
        col("old_balance", Money, Pointer(&["/old_balance"])),
        col("new_balance", Money, Pointer(&["/new_balance", "/initial_balance/amount"])),
        col("balance_change", Money, BalanceChange),
        col("transfer_id", Text, Pointer(&["/transfer_id"])),
        col("counterparty_account_id", Text, Pointer(&["/target_account_id", "/source_account_id"])),
        col("description", Text, Pointer(&["/description"])),
        col("event_time", Kind::Time, Source::Time),
        col("aggregate_version", Int, Version),
        col(DATE_COLUMN, Text, Date),
    ],
};

pub const TELEMETRY: SilverTable = SilverTable {
    name: "telemetry",
    context: None,
    events: &["PointWritten"],
    columns: &[
        col("event_id", Text, Id),
        col("series", Text, Pointer(&["/series"])),
        col("tags", Json, Pointer(&["/tags"])),
        col("value", Float, Pointer(&["/value"])),
        col("point_time", Kind::Time, PointTime),
        col("unit", Text, Pointer(&["/unit"])),
        col("quality", Text, Pointer(&["/quality"])),
        col("source", Text, Subject),
        col("event_time", Kind::Time, Source::Time),
        col(DATE_COLUMN, Text, Date),
    ],
};

pub const CUSTOMERS: SilverTable = SilverTable {
    name: "customers",
    context: Some("orders"),
    events: &["CustomerRegistered", "CustomerUpdated"],
    columns: &[
        col("event_id", Text, Id),
        col("customer_id", Text, Pointer(&["/customer_id"])),
        col("name", Text, Pointer(&["/name"])),
        col("email", Text, Pointer(&["/email"])),
        col("registration_date", Text, Pointer(&["/registration_date"])),
        col("status", Text, Pointer(&["/status"])),
        col("segment", Text, Pointer(&["/segment"])),
        col("event", Text, Name),
        col("event_time", Kind::Time, Source::Time),
        col("aggregate_version", Int, Version),
        col(DATE_COLUMN, Text, Date),
    ],
};

/// Every silver table fed from `bronze.events`.
pub const TABLES: [SilverTable; 5] = [ORDERS, ORDER_ITEMS, ACCOUNT_LEDGER, TELEMETRY, CUSTOMERS];

/// The table an event goes to, if any.
pub fn table_for(context: &str, name: &str) -> Option<&'static SilverTable> {
    TABLES.iter().find(|t| t.accepts(context, name))
}

/// Name of the quarantine table (in the silver layer).
pub const QUARANTINE: &str = "quarantine";

pub fn quarantine_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("target_table", DataType::Utf8, true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("expectation", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, true),
        Field::new("quarantined_at", ts, false),
        Field::new(DATE_COLUMN, DataType::Utf8, false),
    ];
    fields.extend(lineage_fields());
    Arc::new(Schema::new(fields))
}

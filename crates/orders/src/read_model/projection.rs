//! What every read-model adapter shares: which part of a batch is new, and
//! how one event changes one row. Adapters only supply the storage and the
//! transaction around these.

use domain_core::{Aggregate, Money};
use event_store::RecordedText;
use rust_decimal::Decimal;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use domain_core::Currency;

use super::{DailyOrders, OrderSummary};
use crate::order::{OrderEvent, at_minor_units};
use crate::{Error, Order, OrderStatus, Result};

/// The order a recorded event belongs to, or `None` for an event of another
/// aggregate type or context (it moves the checkpoint, no row).
pub(crate) fn order_id(event: &RecordedText) -> Option<&str> {
    if event.envelope.source != <OrderEvent as domain_core::DomainEvent>::CONTEXT {
        return None;
    }
    event.stream.as_str().strip_prefix(Order::TYPE)?.strip_prefix('-')
}

/// An order event of a batch, decoded.
pub(crate) struct Change<'a> {
    pub(crate) event: &'a RecordedText,
    pub(crate) order_id: &'a str,
    decoded: OrderEvent,
}

/// The order events of `batch` decoded, in order; events of other
/// aggregates are left out. Decoding is most of what applying an event
/// costs and each decodes on its own, so a large batch decodes on every
/// core; the rows then evolve in log order on one.
pub(crate) fn decode_batch(batch: &[RecordedText]) -> Result<Vec<Change<'_>>> {
    let decoded =
        event_store::parallel::map_each(batch, |event| order_id(event).map(|_| event.envelope.decode::<OrderEvent>()));
    let mut changes = Vec::with_capacity(batch.len());
    for (event, decoded) in batch.iter().zip(decoded) {
        let (Some(order_id), Some(decoded)) = (order_id(event), decoded) else { continue };
        let decoded = decoded.map_err(|source| Error::Decode { position: event.position, source })?;
        changes.push(Change { event, order_id, decoded });
    }
    Ok(changes)
}

/// The row of the change's order after it.
fn evolve(current: Option<OrderSummary>, change: Change<'_>) -> Result<OrderSummary> {
    let Change { event, order_id, decoded } = change;
    let position = event.position;
    let inconsistent = |reason| Error::Inconsistent { position, order_id: order_id.to_owned(), reason };
    let at = event.envelope.time;
    if let OrderEvent::OrderCreated { customer, currency } = decoded {
        if current.is_some() {
            return Err(inconsistent("the order was created twice"));
        }
        return Ok(OrderSummary {
            order_id: order_id.to_owned(),
            customer_id: customer.customer_id().to_owned(),
            status: OrderStatus::Pending,
            total: Money::new(Decimal::new(0, currency.minor_units()), currency),
            item_count: 0,
            updated_at: at,
        });
    }
    let mut row = current.ok_or_else(|| inconsistent("an event before OrderCreated"))?;
    match decoded {
        OrderEvent::OrderCreated { .. } => {}
        OrderEvent::OrderItemAdded { quantity, unit_price, .. } => {
            let line = unit_price.checked_mul(quantity).map_err(|_| inconsistent("the line total overflows"))?;
            row.total =
                at_minor_units(row.total.checked_add(line).map_err(|_| inconsistent("the total does not add up"))?);
            row.item_count = row.item_count.saturating_add(1);
        }
        OrderEvent::OrderConfirmed { .. } => row.status = OrderStatus::Confirmed,
        OrderEvent::OrderPaid { .. } => row.status = OrderStatus::Paid,
        OrderEvent::OrderPaymentRejected { .. } | OrderEvent::OrderCancelled { .. } => {
            row.status = OrderStatus::Cancelled;
        }
        OrderEvent::OrderShipped { .. } => row.status = OrderStatus::Shipped,
        OrderEvent::OrderDelivered {} => row.status = OrderStatus::Delivered,
        OrderEvent::OrderRefunded { .. } => {}
    }
    row.updated_at = at;
    Ok(row)
}

/// What one event, which took a row from status `was` (`None`: it did not
/// exist) to `after`, adds to the counts of the event's day.
fn day_delta(was: Option<OrderStatus>, after: &OrderSummary, event: &RecordedText) -> Option<DailyOrders> {
    let turned = |status| after.status == status && was != Some(status);
    let (created, paid, cancelled) =
        (u64::from(was.is_none()), u64::from(turned(OrderStatus::Paid)), u64::from(turned(OrderStatus::Cancelled)));
    if created + paid + cancelled == 0 {
        return None;
    }
    let currency = after.total.currency;
    let paid_amount = if paid == 1 { after.total } else { zero(currency) };
    Some(DailyOrders { date: event.envelope.time.date_naive(), currency, created, paid, cancelled, paid_amount })
}

fn zero(currency: Currency) -> Money {
    Money::new(Decimal::new(0, currency.minor_units()), currency)
}

/// Adds `more` (same day and currency) to `into`.
pub(crate) fn add_day(into: &mut DailyOrders, more: &DailyOrders, position: u64) -> Result<()> {
    into.created += more.created;
    into.paid += more.paid;
    into.cancelled += more.cancelled;
    into.paid_amount = at_minor_units(into.paid_amount.checked_add(more.paid_amount).map_err(|_| {
        Error::Inconsistent { position, order_id: String::new(), reason: "the day's paid amount does not add up" }
    })?);
    Ok(())
}

/// The daily counts a batch changes, summed per day and currency.
#[derive(Debug, Default, Clone)]
pub(crate) struct Days {
    days: BTreeMap<(NaiveDate, Currency), DailyOrders>,
}

impl Days {
    /// Evolves `current` through `event` (see [`evolve`]) and counts what
    /// the change adds to the event's day.
    pub(crate) fn evolve(&mut self, current: Option<OrderSummary>, change: Change<'_>) -> Result<OrderSummary> {
        let was = current.as_ref().map(|r| r.status);
        let event = change.event;
        let after = evolve(current, change)?;
        if let Some(delta) = day_delta(was, &after, event) {
            match self.days.get_mut(&(delta.date, delta.currency)) {
                Some(day) => add_day(day, &delta, event.position)?,
                None => {
                    self.days.insert((delta.date, delta.currency), delta);
                }
            }
        }
        Ok(after)
    }

    /// Adds what `more` (a later batch's days) counts.
    pub(crate) fn absorb(&mut self, more: Days, position: u64) -> Result<()> {
        for (key, delta) in more.days {
            match self.days.get_mut(&key) {
                Some(day) => add_day(day, &delta, position)?,
                None => {
                    self.days.insert(key, delta);
                }
            }
        }
        Ok(())
    }

    /// The changed days, each as what to add to the stored one.
    pub(crate) fn into_deltas(self) -> impl Iterator<Item = DailyOrders> {
        self.days.into_values()
    }
}

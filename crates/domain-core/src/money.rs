//! Money: an exact decimal amount with an ISO 4217 currency code.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An ISO 4217 alphabetic code such as `CNY` or `USD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");
    pub const USD: Currency = Currency(*b"USD");

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Currency([*a, *b, *c])),
            _ => Err(Error::InvalidCurrency(s.to_owned())),
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of one currency. Arithmetic across currencies is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Serialized as a string ("399.97") so no float ever touches it.
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    pub fn checked_add(self, other: Money) -> Result<Money> {
        self.same_currency(&other)?;
        self.amount.checked_add(other.amount).map(|a| Money::new(a, self.currency)).ok_or(Error::AmountOverflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money> {
        self.same_currency(&other)?;
        self.amount.checked_sub(other.amount).map(|a| Money::new(a, self.currency)).ok_or(Error::AmountOverflow)
    }

    pub fn checked_mul(self, quantity: u32) -> Result<Money> {
        self.amount
            .checked_mul(Decimal::from(quantity))
            .map(|a| Money::new(a, self.currency))
            .ok_or(Error::AmountOverflow)
    }

    fn same_currency(&self, other: &Money) -> Result<()> {
        if self.currency != other.currency {
            return Err(Error::CurrencyMismatch { left: self.currency.to_string(), right: other.currency.to_string() });
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn seed_order_total_is_exact() {
        let p1 = Money::new(Decimal::from_str("99.99").expect("dec"), Currency::CNY);
        let p2 = Money::new(Decimal::from_str("199.99").expect("dec"), Currency::CNY);
        let total = p1.checked_mul(2).and_then(|t| t.checked_add(p2)).expect("same currency");
        assert_eq!(total.amount.to_string(), "399.97");
        assert_eq!(
            serde_json::to_value(total).expect("json"),
            serde_json::json!({"amount": "399.97", "currency": "CNY"})
        );
    }

    #[test]
    fn bad_codes_and_mixed_currencies_are_errors() {
        for bad in ["", "cny", "CN", "CNYY", "C1Y"] {
            assert!(matches!(bad.parse::<Currency>(), Err(Error::InvalidCurrency(_))));
        }
        let a = Money::zero(Currency::CNY);
        let b = Money::zero(Currency::USD);
        assert!(matches!(a.checked_add(b), Err(Error::CurrencyMismatch { .. })));
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"usd"}"#).is_err());
    }
}

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

    /// Digits after the decimal point of the currency's minor unit (ISO
    /// 4217): 0 for JPY or KRW, 3 for BHD, KWD, OMR, JOD or TND, else 2.
    pub fn minor_units(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"VND" | b"CLP" | b"ISK" | b"UGX" | b"PYG" | b"XAF" | b"XOF" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" | b"IQD" | b"LYD" => 3,
            _ => 2,
        }
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
    /// Serialized as a string ("399.97") so no float ever touches it; a
    /// JSON number is refused on the way in (it may already have been
    /// rounded by whoever wrote it).
    #[serde(deserialize_with = "amount_from_text")]
    pub amount: Decimal,
    pub currency: Currency,
}

fn amount_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Decimal, D::Error> {
    /// Reads the text in place (no copy per amount: a projection reads
    /// every amount of the log).
    struct Amount;
    impl serde::de::Visitor<'_> for Amount {
        type Value = Decimal;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal amount as a string")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<Decimal, E> {
            text.trim().parse::<Decimal>().map_err(|_| E::custom(format!("`{text}` is not a decimal amount")))
        }
    }
    d.deserialize_str(Amount)
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

    /// Parses `"399.97"` as an amount of `currency`, written with at least
    /// the currency's minor-unit digits ("1000" becomes "1000.00"; extra
    /// digits are kept, for [`Money::ensure_payable`] to refuse).
    pub fn parse(amount: &str, currency: Currency) -> Result<Money> {
        let mut amount = amount
            .trim()
            .parse::<Decimal>()
            .map_err(|_| Error::InvalidAmount { amount: amount.to_owned(), reason: "not a decimal number".into() })?;
        if amount.scale() < currency.minor_units() {
            amount.rescale(currency.minor_units());
        }
        Ok(Money::new(amount, currency))
    }

    /// Checks that the amount is above zero and has no more digits after the
    /// point than the currency's minor unit (no 0.001 of a yuan).
    pub fn ensure_payable(&self) -> Result<()> {
        if self.amount <= Decimal::ZERO {
            return Err(Error::InvalidAmount { amount: self.amount.to_string(), reason: "must be above zero".into() });
        }
        self.ensure_minor_units()
    }

    /// Checks only the precision (zero and negative amounts pass).
    pub fn ensure_minor_units(&self) -> Result<()> {
        let units = self.currency.minor_units();
        if self.amount.normalize().scale() > units {
            return Err(Error::InvalidAmount {
                amount: self.amount.to_string(),
                reason: format!("{} has {units} digits after the point", self.currency),
            });
        }
        Ok(())
    }

    /// The amount written with exactly the currency's minor-unit digits
    /// ("1000.00", "300.00").
    pub fn to_minor_string(&self) -> String {
        format!("{:.*}", self.currency.minor_units() as usize, self.amount)
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
    fn payable_amounts_respect_the_minor_unit() {
        let m = |a: &str, c: &str| Money::parse(a, c.parse().expect("code")).expect("decimal");
        assert!(m("0.01", "CNY").ensure_payable().is_ok());
        assert!(m("10.000", "CNY").ensure_payable().is_ok(), "trailing zeros are not precision");
        for (a, c) in [("0", "CNY"), ("-1", "CNY"), ("0.001", "CNY"), ("1.5", "JPY"), ("0.0001", "KWD")] {
            assert!(matches!(m(a, c).ensure_payable(), Err(Error::InvalidAmount { .. })), "{a} {c}");
        }
        assert!(matches!(Money::parse("12,5", Currency::CNY), Err(Error::InvalidAmount { .. })));
        assert_eq!(m("1000", "CNY").to_minor_string(), "1000.00");
        assert_eq!(m("1000", "CNY").amount.to_string(), "1000.00", "parsed at the minor unit");
        assert_eq!(m("300", "JPY").to_minor_string(), "300");
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
        assert!(serde_json::from_str::<Money>(r#"{"amount":12.5,"currency":"USD"}"#).is_err(), "no floats");
        assert!(serde_json::from_str::<Money>(r#"{"amount":"12,5","currency":"USD"}"#).is_err());
        let m: Money = serde_json::from_str(r#"{"amount":"12.50","currency":"USD"}"#).expect("text");
        assert_eq!(m.amount.to_string(), "12.50");
    }
}

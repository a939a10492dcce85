//! Amount rules: every price and payment is positive and no finer than the
//! currency's minor unit (ISO 4217 exponent, from the shared kernel's
//! [`domain_core::Currency::minor_units`], so orders and accounts agree on it).

use domain_core::Money;
use rust_decimal::Decimal;

use super::OrderError;

/// Refuses zero, negative and over-precise amounts (`99.990` is fine for
/// CNY: trailing zeros carry no precision).
pub(crate) fn check_amount(money: Money) -> Result<(), OrderError> {
    if money.amount <= Decimal::ZERO {
        return Err(OrderError::NonPositiveAmount(money));
    }
    let max_digits = money.currency.minor_units();
    if money.amount.normalize().scale() > max_digits {
        return Err(OrderError::TooPrecise { amount: money, max_digits });
    }
    Ok(())
}

/// `money` written with exactly the currency's minor-unit digits
/// (`399.97`, `100.00`, `1000` for JPY). Only call it on amounts that
/// passed [`check_amount`] or sums of them, so no digit is lost.
pub(crate) fn at_minor_units(mut money: Money) -> Money {
    money.amount.rescale(money.currency.minor_units());
    money
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str, c: &str) -> Money {
        Money::new(s.parse().expect("decimal"), c.parse().expect("currency"))
    }

    #[test]
    fn amounts_must_be_positive_and_not_too_precise() {
        assert!(check_amount(money("99.99", "CNY")).is_ok());
        assert!(check_amount(money("99.990", "CNY")).is_ok(), "trailing zeros are not precision");
        assert!(check_amount(money("1000", "JPY")).is_ok());
        assert!(check_amount(money("1.234", "KWD")).is_ok());
        assert!(matches!(check_amount(money("0", "CNY")), Err(OrderError::NonPositiveAmount(_))));
        assert!(matches!(check_amount(money("-1.00", "CNY")), Err(OrderError::NonPositiveAmount(_))));
        assert!(matches!(check_amount(money("0.001", "CNY")), Err(OrderError::TooPrecise { max_digits: 2, .. })));
        assert!(matches!(check_amount(money("99.5", "JPY")), Err(OrderError::TooPrecise { max_digits: 0, .. })));
        assert!(matches!(check_amount(money("1.2345", "BHD")), Err(OrderError::TooPrecise { max_digits: 3, .. })));
    }

    #[test]
    fn sums_are_written_with_the_minor_units() {
        assert_eq!(at_minor_units(money("100", "CNY")).amount.to_string(), "100.00");
        assert_eq!(at_minor_units(money("399.97", "CNY")).amount.to_string(), "399.97");
        assert_eq!(at_minor_units(money("1000", "JPY")).amount.to_string(), "1000");
    }
}

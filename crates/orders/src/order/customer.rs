//! `CustomerInfo`: the customer an order belongs to, a validated value
//! object (it cannot exist with a malformed email or phone, not even when
//! read back from storage).

use serde::{Deserialize, Serialize};

use super::OrderError;

/// Longest email address accepted (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// Who placed the order (seed: `CustomerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "CustomerFields")]
pub struct CustomerInfo {
    customer_id: String,
    name: String,
    email: String,
    phone: String,
}

/// The serialized shape, validated on the way in.
#[derive(Deserialize)]
struct CustomerFields {
    customer_id: String,
    name: String,
    email: String,
    phone: String,
}

impl TryFrom<CustomerFields> for CustomerInfo {
    type Error = OrderError;
    fn try_from(f: CustomerFields) -> Result<Self, OrderError> {
        Self::new(f.customer_id, f.name, f.email, f.phone)
    }
}

impl CustomerInfo {
    /// Validates and trims every part: the id is non-empty without
    /// whitespace (it also names the customer's payment account), the name
    /// non-empty, the email `local@domain.tld`, the phone 5 to 20 digits
    /// with an optional leading `+`.
    pub fn new(
        customer_id: impl Into<String>,
        name: impl Into<String>,
        email: impl Into<String>,
        phone: impl Into<String>,
    ) -> Result<Self, OrderError> {
        let customer_id = account_like_id(customer_id.into())
            .map_err(|(value, reason)| OrderError::InvalidCustomerId { value, reason })?;
        let name = name.into().trim().to_owned();
        if name.is_empty() {
            return Err(OrderError::EmptyCustomerName);
        }
        let email = email.into().trim().to_owned();
        if let Err(reason) = check_email(&email) {
            return Err(OrderError::InvalidEmail { value: email, reason });
        }
        let phone = phone.into().trim().to_owned();
        if let Err(reason) = check_phone(&phone) {
            return Err(OrderError::InvalidPhone { value: phone, reason });
        }
        Ok(Self { customer_id, name, email, phone })
    }

    pub fn customer_id(&self) -> &str {
        &self.customer_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn phone(&self) -> &str {
        &self.phone
    }
}

/// An id that can also name an account or a stream: trimmed, non-empty, no
/// whitespace or control characters inside. On failure: (value, reason).
pub(crate) fn account_like_id(raw: String) -> Result<String, (String, &'static str)> {
    let id = raw.trim();
    if id.is_empty() {
        return Err((raw, "empty"));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((raw, "contains whitespace or control characters"));
    }
    Ok(id.to_owned())
}

pub(crate) fn check_email(email: &str) -> Result<(), &'static str> {
    if email.len() > MAX_EMAIL {
        return Err("longer than 254 bytes");
    }
    let Some((local, domain)) = email.split_once('@') else { return Err("has no `@`") };
    if local.is_empty() {
        return Err("nothing before `@`");
    }
    if domain.contains('@') {
        return Err("more than one `@`");
    }
    if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace in the local part");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain has no `.tld`");
    }
    for label in &labels {
        if label.is_empty() {
            return Err("empty domain label");
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') || label.starts_with('-') || label.ends_with('-') {
            return Err("domain labels are letters, digits and inner `-`");
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.chars().count() < 2 || !tld.chars().all(char::is_alphabetic) {
        return Err("the top-level domain is two or more letters");
    }
    Ok(())
}

fn check_phone(phone: &str) -> Result<(), &'static str> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("only digits, with an optional leading `+`");
    }
    if !(5..=20).contains(&digits.len()) {
        return Err("5 to 20 digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Result<CustomerInfo, OrderError> {
        CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", "13800138000")
    }

    #[test]
    fn the_seed_customer_is_valid_and_round_trips() {
        let c = seed().expect("valid");
        assert_eq!(
            (c.customer_id(), c.name(), c.email(), c.phone()),
            ("cust_123", "张三", "zhangsan@example.com", "13800138000")
        );
        let json = serde_json::to_value(&c).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"customer_id":"cust_123","name":"张三","email":"zhangsan@example.com","phone":"13800138000"})
        );
        assert_eq!(serde_json::from_value::<CustomerInfo>(json).expect("back"), c);
        let padded =
            CustomerInfo::new(" cust_123 ", " 张三 ", " zhangsan@example.com ", " +8613800138000 ").expect("ok");
        assert_eq!((padded.customer_id(), padded.name(), padded.phone()), ("cust_123", "张三", "+8613800138000"));
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "zhangsan",
            "@example.com",
            "zhangsan@",
            "zhangsan@example",
            "zhang san@example.com",
            "a@b@example.com",
            "zhangsan@example..com",
            "zhangsan@.example.com",
            "zhangsan@example.c",
            "zhangsan@example.c0m",
            "zhangsan@-example.com",
            "zhangsan@exa_mple.com",
        ] {
            let r = CustomerInfo::new("cust_123", "张三", bad, "13800138000");
            assert!(matches!(r, Err(OrderError::InvalidEmail { .. })), "{bad:?} gave {r:?}");
        }
        assert!(CustomerInfo::new("c", "n", "zhang.san+shop@mail.example.com.cn", "12345").is_ok());
        assert!(CustomerInfo::new("c", "n", "用户@例子.中国", "12345").is_ok(), "internationalised domains");
    }

    #[test]
    fn malformed_phones_ids_and_names_are_refused() {
        for bad in
            ["", "1234", "123456789012345678901", "+", "138-0013-8000", "138 0013 8000", "++13800138000", "１２３４５"]
        {
            let r = CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", bad);
            assert!(matches!(r, Err(OrderError::InvalidPhone { .. })), "{bad:?} gave {r:?}");
        }
        assert!(CustomerInfo::new("c", "n", "a@b.cd", "+12345").is_ok());
        assert!(CustomerInfo::new("c", "n", "a@b.cd", "12345678901234567890").is_ok());
        for bad_id in ["", "   ", "cust 123", "cust\n1"] {
            let r = CustomerInfo::new(bad_id, "张三", "zhangsan@example.com", "13800138000");
            assert!(matches!(r, Err(OrderError::InvalidCustomerId { .. })), "{bad_id:?} gave {r:?}");
        }
        let r = CustomerInfo::new("cust_123", "  ", "zhangsan@example.com", "13800138000");
        assert!(matches!(r, Err(OrderError::EmptyCustomerName)));
    }

    #[test]
    fn stored_customers_are_validated_when_read() {
        let bad = serde_json::json!({"customer_id":"c","name":"n","email":"nope","phone":"12345"});
        let err = serde_json::from_value::<CustomerInfo>(bad).expect_err("refused");
        assert!(err.to_string().contains("email"), "{err}");
    }
}

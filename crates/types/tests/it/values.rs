//! Ids, timestamps and money: parsing, printing and arithmetic.

use rust_decimal::Decimal;
use types::{Currency, Id, Money, MoneyError, Timestamp};

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

#[test]
fn ids_round_trip_and_order_by_creation() {
    let a = Id::new();
    let b = Id::new();
    assert!(a < b, "UUIDv7 ids made later must sort later");
    assert_eq!(a.to_string().parse::<Id>().unwrap(), a);
    assert_eq!(Id::from_bytes(*a.as_bytes()), a);
    let err = "not-an-id".parse::<Id>().unwrap_err().to_string();
    assert!(err.contains("not-an-id"), "{err}");
}

#[test]
fn timestamps_are_utc_rfc3339() {
    let check = |input: &str, expect: &str| {
        let t: Timestamp = input.parse().unwrap();
        assert_eq!(t.to_string(), expect);
    };
    check("2023-11-06T09:30:00Z", "2023-11-06T09:30:00Z");
    check("2023-11-06T17:30:00+08:00", "2023-11-06T09:30:00Z");
    let t: Timestamp = "2023-11-06T09:30:00Z".parse().unwrap();
    assert_eq!(Timestamp::from_unix_millis(t.unix_millis()).unwrap(), t);
    assert_eq!(t.unix_seconds(), 1_699_263_000);
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"2023-11-06T09:30:00Z\"");
    assert!("yesterday".parse::<Timestamp>().is_err());
}

#[test]
fn money_is_exact() {
    let a: Money = "0.1 CNY".parse().unwrap();
    let b: Money = "0.2 CNY".parse().unwrap();
    assert_eq!(a.checked_add(b).unwrap(), Money::new(dec("0.3"), Currency::CNY));
    assert_eq!(
        Money::new(dec("100"), Currency::CNY).checked_sub(a).unwrap().to_string(),
        "99.9 CNY"
    );
    let interest = Money::new(dec("10000"), Currency::CNY).checked_mul(dec("0.0435")).unwrap();
    assert_eq!(interest.round_dp(2).to_string(), "435.00 CNY");
    assert_eq!(Money::new(dec("2.345"), Currency::CNY).round_dp(2).amount, dec("2.35"));
    assert_eq!(Money::new(dec("-2.345"), Currency::CNY).round_dp(2).amount, dec("-2.35"));
}

#[test]
fn money_errors_say_what_is_wrong() {
    let usd: Money = "1 USD".parse().unwrap();
    let cny: Money = "1 CNY".parse().unwrap();
    assert_eq!(
        usd.checked_add(cny),
        Err(MoneyError::CurrencyMismatch { left: Currency::USD, right: Currency::CNY })
    );
    assert!(matches!("1.2.3 CNY".parse::<Money>(), Err(MoneyError::InvalidAmount(_))));
    assert!(matches!("12".parse::<Money>(), Err(MoneyError::InvalidAmount(_))));
    assert!(matches!("1 yuan".parse::<Money>(), Err(MoneyError::InvalidCurrency(_))));
    let json = serde_json::to_string(&usd).unwrap();
    assert_eq!(json, r#"{"amount":"1","currency":"USD"}"#);
    assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"usd"}"#).is_err());
}

//! Money as an exact decimal amount with its currency.
//!
//! Binary floating point cannot represent 0.1 yuan; financial answers must add up to the fen, so money
//! is a `rust_decimal::Decimal` and arithmetic between different currencies is an error, not a guess.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code such as `CNY` or `USD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Money arithmetic or parsing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not three ASCII capital letters.
    #[error("invalid currency code {0:?}: expected three capital letters such as CNY")]
    InvalidCurrency(String),
    /// Text that is not `<amount> <currency>`.
    #[error(
        "invalid amount {0:?}: expected a decimal amount and a currency, such as \"12.50 CNY\""
    )]
    InvalidAmount(String),
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}: currencies differ")]
    CurrencyMismatch {
        /// The left operand's currency.
        left: Currency,
        /// The right operand's currency.
        right: Currency,
    },
    /// The result does not fit a decimal.
    #[error("money arithmetic overflowed")]
    Overflow,
}

impl Currency {
    /// Chinese yuan renminbi.
    pub const CNY: Currency = Currency(*b"CNY");
    /// United States dollar.
    pub const USD: Currency = Currency(*b"USD");

    /// The three-letter code.
    pub fn as_str(&self) -> &str {
        // Construction only admits ASCII capitals, so this is always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Currency, MoneyError> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|b| b.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(MoneyError::InvalidCurrency(s.to_owned())),
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(s: String) -> Result<Currency, MoneyError> {
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

/// An exact amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount, exact to any number of decimal places.
    pub amount: Decimal,
    /// The currency the amount is in.
    pub currency: Currency,
}

impl Money {
    /// An amount in a currency.
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// The sum of two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// The difference of two amounts of the same currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_sub(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// The amount scaled by a decimal factor (a rate, a share), in the same currency.
    pub fn checked_mul(self, factor: Decimal) -> Result<Money, MoneyError> {
        let amount = self.amount.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// The amount rounded half away from zero to `dp` decimal places (2 for yuan to the fen).
    pub fn round_dp(self, dp: u32) -> Money {
        let amount = self
            .amount
            .round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        Money::new(amount, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Money, MoneyError> {
        let invalid = || MoneyError::InvalidAmount(s.to_owned());
        let (amount, currency) = s.trim().split_once(' ').ok_or_else(invalid)?;
        let amount = Decimal::from_str_exact(amount.trim()).map_err(|_| invalid())?;
        Ok(Money::new(amount, currency.trim().parse()?))
    }
}

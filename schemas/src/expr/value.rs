//! The values an expression computes with, and XPath 1.0's conversions between them.
//!
//! Answers reach an expression typed by their field (a number for `integer`, a date for
//! `date`), as JavaRosa types them; everything else is a string, and an empty answer is
//! the empty string `''`, never a number.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// One value of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
}

impl Value {
    /// The empty answer.
    pub fn empty() -> Value {
        Value::Str(String::new())
    }

    /// XPath `boolean()`: a non-empty string, a non-zero number.
    pub fn to_bool(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Num(n) => *n != 0.0 && !n.is_nan(),
            Value::Bool(b) => *b,
            Value::Date(_) | Value::DateTime(_) => true,
        }
    }

    /// XPath `number()`; dates count days since 1970-01-01 as in ODK, so that
    /// `today() + 1` and comparisons with numbers work.
    pub fn to_num(&self) -> f64 {
        match self {
            Value::Str(s) => parse_number(s),
            Value::Num(n) => *n,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Date(d) => days_of_date(*d),
            Value::DateTime(t) => days_of_datetime(t),
        }
    }

    /// XPath `string()`: integers without a fraction, dates as ISO 8601.
    pub fn to_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Num(n) => number_to_string(*n),
            Value::Bool(b) => b.to_string(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        }
    }

    /// The value as days since the epoch when it is a date, a date-time, or a string
    /// that reads as one; `None` otherwise.
    pub(crate) fn as_days(&self) -> Option<f64> {
        match self {
            Value::Date(d) => Some(days_of_date(*d)),
            Value::DateTime(t) => Some(days_of_datetime(t)),
            Value::Str(s) => parse_temporal(s).map(|v| v.to_num()),
            Value::Num(_) | Value::Bool(_) => None,
        }
    }

    pub(crate) fn is_temporal(&self) -> bool {
        matches!(self, Value::Date(_) | Value::DateTime(_))
    }
}

/// XPath's number syntax: optional minus, digits, optional fraction. Anything else
/// (including `1e3`, `inf` and the empty string) is NaN, as in XPath.
pub(crate) fn parse_number(s: &str) -> f64 {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let well_formed = !digits.is_empty()
        && digits != "."
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if well_formed {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        "NaN".to_string()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if n == n.trunc() && n.abs() < 1e15 {
        // -0 prints as 0, as in XPath.
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .unwrap_or_default()
        .and_time(NaiveTime::MIN)
}

fn days_of_date(d: NaiveDate) -> f64 {
    (d.and_time(NaiveTime::MIN) - epoch()).num_days() as f64
}

/// Date-times count in their own offset's local time, as a phone shows them: 23:00 on
/// the 1st at -04:00 is still the 1st.
fn days_of_datetime(t: &DateTime<FixedOffset>) -> f64 {
    let elapsed = t.naive_local() - epoch();
    elapsed.num_milliseconds() as f64 / 86_400_000.0
}

/// A date from days since the epoch (the fraction is dropped), if in chrono's range.
pub(crate) fn date_of_days(days: f64) -> Option<NaiveDate> {
    if !days.is_finite() || days.abs() > 1e8 {
        return None;
    }
    epoch()
        .date()
        .checked_add_signed(chrono::Duration::days(days.floor() as i64))
}

/// `YYYY-MM-DD` as a date, an RFC 3339 date-time as a date-time.
pub(crate) fn parse_temporal(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(Value::Date(d));
    }
    DateTime::parse_from_rfc3339(s).ok().map(Value::DateTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_and_print_as_in_xpath() {
        assert_eq!(parse_number(" 12.5 "), 12.5);
        assert_eq!(parse_number("-3"), -3.0);
        assert!(parse_number("").is_nan());
        assert!(parse_number("1e3").is_nan());
        assert!(parse_number("inf").is_nan());
        assert!(parse_number(".").is_nan());
        assert_eq!(number_to_string(3.0), "3");
        assert_eq!(number_to_string(-0.0), "0");
        assert_eq!(number_to_string(2.5), "2.5");
        assert_eq!(number_to_string(f64::NAN), "NaN");
    }

    #[test]
    fn dates_count_days_since_the_epoch_in_their_own_offset() {
        let d = parse_temporal("1970-01-11").unwrap();
        assert_eq!(d.to_num(), 10.0);
        let late = parse_temporal("1970-01-01T23:00:00-04:00").unwrap();
        assert!(late.to_num() > 0.95 && late.to_num() < 0.96);
        assert_eq!(date_of_days(10.7), NaiveDate::from_ymd_opt(1970, 1, 11));
        assert_eq!(date_of_days(f64::NAN), None);
        assert_eq!(d.to_str(), "1970-01-11");
    }
}

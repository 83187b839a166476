//! Cases written from ODK's documented behaviour of each operator and function.

use chrono::{DateTime, FixedOffset};

use super::{Expr, Scope, Value};

struct Answers {
    this: Value,
}

impl Scope for Answers {
    fn this(&self) -> Value {
        self.this.clone()
    }
    fn answer(&self, name: &str) -> Value {
        match name {
            "age" => Value::Num(34.0),
            "arrests" => Value::Num(2.0),
            "empty" => Value::empty(),
            "flag" => Value::Bool(true),
            "colours" => Value::Str("red green".into()),
            "name" => Value::Str("Marlin".into()),
            "boarded" => Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()),
            _ => Value::empty(),
        }
    }
    fn count(&self, repeat: &str) -> usize {
        if repeat == "crew" {
            3
        } else {
            0
        }
    }
    fn now(&self) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-12-01T23:30:00-04:00").unwrap()
    }
}

fn eval(src: &str) -> Value {
    let scope = Answers {
        this: Value::Str("AB-123".into()),
    };
    Expr::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(&scope)
}

fn truth(src: &str) -> bool {
    eval(src).to_bool()
}

#[test]
fn arithmetic_and_precedence_follow_xpath() {
    assert_eq!(eval("1 + 2 * 3"), Value::Num(7.0));
    assert_eq!(eval("(1 + 2) * 3"), Value::Num(9.0));
    assert_eq!(eval("7 mod 3"), Value::Num(1.0));
    assert_eq!(eval("-7 mod 3"), Value::Num(-1.0));
    assert_eq!(eval("7 div 2"), Value::Num(3.5));
    assert_eq!(eval("10 - 2 - 3"), Value::Num(5.0));
    assert_eq!(eval("- - 4"), Value::Num(4.0));
    assert!(eval("1 div 0").to_num().is_infinite());
    assert!(eval("${empty} + 1").to_num().is_nan());
    assert!(truth("1 < 2 and 2 < 3 or 1 = 0"));
    assert!(!truth("1 = 1 and 1 = 0"));
}

#[test]
fn comparisons_type_like_odk() {
    assert!(truth("${age} >= 18"));
    assert!(
        truth("${age} = '34'"),
        "a number compares numerically with a string"
    );
    assert!(
        truth("${empty} = ''"),
        "an empty answer is the empty string"
    );
    assert!(!truth("${empty} > 3"), "NaN compares false");
    assert!(!truth("${empty} < 3"));
    assert!(truth("${flag} = true()"));
    assert!(truth("${name} != 'Tuna'"));
    assert!(
        truth("${boarded} < '2026-12-01'"),
        "a date compares with a date string"
    );
    assert!(truth("${boarded} = '2026-11-30'"));
    assert!(truth("${boarded} <= today()"));
    assert!(
        truth("today() = '2026-12-01'"),
        "today() is read in the scope's offset"
    );
    assert!(truth("${boarded} + 1 = date('2026-12-01')"));
    assert!(truth("now() > ${boarded}"));
}

#[test]
fn functions_of_the_subset() {
    assert!(truth("selected(${colours}, 'green')"));
    assert!(!truth("selected(${colours}, 'gre')"));
    assert_eq!(eval("count-selected(${colours})"), Value::Num(2.0));
    assert_eq!(eval("string-length(.)"), Value::Num(6.0));
    assert!(truth("regex(., '^[A-Z]{2}-[0-9]+$')"));
    assert!(
        truth("regex(., '[0-9]')"),
        "regex() searches, as JavaRosa's does"
    );
    assert!(!truth("regex(., concat('^', 'x'))"));
    assert!(truth("contains(${name}, 'arl')"));
    assert!(truth("starts-with(${name}, 'Mar')"));
    assert!(truth("ends-with(${name}, 'lin')"));
    assert_eq!(eval("int(-3.7)"), Value::Num(-3.0));
    assert_eq!(eval("number('2.5') * 2"), Value::Num(5.0));
    assert_eq!(eval("string(3)"), Value::Str("3".into()));
    assert_eq!(
        eval("if(${age} > 18, 'adult', 'minor')"),
        Value::Str("adult".into())
    );
    assert_eq!(
        eval("coalesce(${empty}, 'none')"),
        Value::Str("none".into())
    );
    assert_eq!(
        eval("coalesce(${name}, 'none')"),
        Value::Str("Marlin".into())
    );
    assert_eq!(eval("count(${crew})"), Value::Num(3.0));
    assert!(truth("not(${empty})"));
    assert_eq!(eval("date(0)").to_str(), "1970-01-01");
    assert!(eval("date('soon')").to_num().is_nan());
    assert_eq!(
        eval("decimal-date-time('1970-01-02T12:00:00Z')"),
        Value::Num(1.5)
    );
    assert_eq!(
        eval("concat(${name}, '-', 1)"),
        Value::Str("Marlin-1".into())
    );
}

#[test]
fn refusals_say_what_and_where() {
    let cases = [
        ("", "empty"),
        ("1 +", "ends where a value was expected"),
        ("(1", "expected ')'"),
        ("${a", "never closed"),
        ("'abc", "never closed"),
        ("pulldata('x')", "pulldata() is not supported"),
        ("selected(.)", "takes 2 argument(s), not 1"),
        ("count(.)", "count(${name})"),
        ("/data/x = 1", "not supported"),
        ("../x", "not supported"),
        ("age > 3", "is not a value"),
        ("regex(., '(')", "invalid regex"),
        ("1 ! 2", "not()"),
        ("1 2", "after the end"),
        ("${1x}", "not a valid field name"),
    ];
    for (src, wanted) in cases {
        let e = Expr::parse(src).expect_err(src);
        assert!(e.to_string().contains(wanted), "{src:?}: {e}");
    }
    assert_eq!(Expr::parse("1 + ").unwrap_err().at, 5);
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(Expr::parse(&deep).unwrap_err().message.contains("deeper"));
    assert!(Expr::parse(&"1+".repeat(3000)).is_err());
}

#[test]
fn names_counts_and_the_json_tree() {
    let e = Expr::parse("count(${crew}) <= ${arrests} and . != ${crew}").unwrap();
    assert_eq!(e.names(), ["crew", "arrests"]);
    assert_eq!(e.counted(), ["crew"]);
    let j = Expr::parse("selected(${a}, 'x') or -1 < 2")
        .unwrap()
        .to_json();
    assert_eq!(
        j,
        serde_json::json!([
            "op",
            "or",
            ["call", "selected", [["ref", "a"], ["str", "x"]]],
            ["op", "<", ["neg", ["num", 1.0]], ["num", 2.0]]
        ])
    );
}

//! Evaluation of a parsed expression against a [`Scope`]. Total: every input gives a
//! value (NaN, `''` or false where XPath would), never a panic or an error, because a
//! record that arrived by sync must always be judged, however odd its answers.

use super::tree::{Func, Node, Op};
use super::value::{date_of_days, parse_temporal, Value};
use super::Scope;
use crate::form::REGEX_SIZE_LIMIT;

pub(crate) fn eval(node: &Node, scope: &dyn Scope) -> Value {
    match node {
        Node::Num(n) => Value::Num(*n),
        Node::Str(s) => Value::Str(s.clone()),
        Node::Dot => scope.this(),
        Node::Ref(name) => scope.answer(name),
        Node::Neg(x) => Value::Num(-eval(x, scope).to_num()),
        Node::Bin(Op::Or, a, b) => {
            Value::Bool(eval(a, scope).to_bool() || eval(b, scope).to_bool())
        }
        Node::Bin(Op::And, a, b) => {
            Value::Bool(eval(a, scope).to_bool() && eval(b, scope).to_bool())
        }
        Node::Bin(op, a, b) => binary(*op, &eval(a, scope), &eval(b, scope)),
        Node::Regex(s, regex) => Value::Bool(regex.is_match(&eval(s, scope).to_str())),
        Node::Call(func, args) => call(*func, args, scope),
    }
}

fn binary(op: Op, a: &Value, b: &Value) -> Value {
    let num = |f: fn(f64, f64) -> f64| Value::Num(f(a.to_num(), b.to_num()));
    match op {
        Op::Eq => Value::Bool(equal(a, b)),
        Op::Ne => Value::Bool(!equal(a, b)),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let (x, y) = relational_operands(a, b);
            Value::Bool(match op {
                Op::Lt => x < y,
                Op::Le => x <= y,
                Op::Gt => x > y,
                _ => x >= y,
            })
        }
        Op::Add => num(|x, y| x + y),
        Op::Sub => num(|x, y| x - y),
        Op::Mul => num(|x, y| x * y),
        Op::Div => num(|x, y| x / y),
        // XPath's mod keeps the sign of the dividend, as Rust's % does.
        Op::Mod => num(|x, y| x % y),
        // `eval` short-circuits these; both sides are known here.
        Op::Or => Value::Bool(a.to_bool() || b.to_bool()),
        Op::And => Value::Bool(a.to_bool() && b.to_bool()),
    }
}

/// XPath 1.0 equality, with ODK's typing of dates: a boolean on either side compares
/// as booleans, then a number as numbers, then a date with a date string as dates;
/// otherwise as strings.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Bool(_), _) | (_, Value::Bool(_)) => a.to_bool() == b.to_bool(),
        (Value::Num(_), _) | (_, Value::Num(_)) => a.to_num() == b.to_num(),
        _ if a.is_temporal() || b.is_temporal() => match (a.as_days(), b.as_days()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => a.to_str() == b.to_str(),
    }
}

/// The numbers `<` and friends compare: days when a date meets a date or a date
/// string, else XPath numbers (so `'' < 3` is false, as NaN compares false).
fn relational_operands(a: &Value, b: &Value) -> (f64, f64) {
    let numeric =
        matches!(a, Value::Num(_) | Value::Bool(_)) || matches!(b, Value::Num(_) | Value::Bool(_));
    if !numeric && (a.is_temporal() || b.is_temporal()) {
        (
            a.as_days().unwrap_or(f64::NAN),
            b.as_days().unwrap_or(f64::NAN),
        )
    } else {
        (a.to_num(), b.to_num())
    }
}

fn call(func: Func, args: &[Node], scope: &dyn Scope) -> Value {
    let arg = |i: usize| args.get(i).map_or_else(Value::empty, |a| eval(a, scope));
    let text = |i: usize| arg(i).to_str();
    match func {
        Func::Selected => {
            let wanted = text(1);
            let wanted = wanted.trim();
            Value::Bool(text(0).split_whitespace().any(|v| v == wanted))
        }
        Func::CountSelected => Value::Num(text(0).split_whitespace().count() as f64),
        Func::StringLength => Value::Num(text(0).chars().count() as f64),
        Func::Regex => {
            // A pattern computed from answers: compiled per evaluation, within the same
            // limits as a literal one; a pattern that does not compile matches nothing.
            let matched = regex::RegexBuilder::new(&text(1))
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .is_ok_and(|re| re.is_match(&text(0)));
            Value::Bool(matched)
        }
        Func::Contains => Value::Bool(text(0).contains(&text(1))),
        Func::StartsWith => Value::Bool(text(0).starts_with(&text(1))),
        Func::EndsWith => Value::Bool(text(0).ends_with(&text(1))),
        Func::Today => Value::Date(scope.now().date_naive()),
        Func::Now => Value::DateTime(scope.now()),
        Func::Date => to_date(arg(0)),
        Func::DecimalDateTime => Value::Num(arg(0).as_days().unwrap_or_else(|| arg(0).to_num())),
        Func::Int => Value::Num(arg(0).to_num().trunc()),
        Func::Number => Value::Num(arg(0).to_num()),
        Func::String => Value::Str(text(0)),
        Func::Boolean => Value::Bool(arg(0).to_bool()),
        Func::Not => Value::Bool(!arg(0).to_bool()),
        Func::True => Value::Bool(true),
        Func::False => Value::Bool(false),
        Func::If => {
            if arg(0).to_bool() {
                arg(1)
            } else {
                arg(2)
            }
        }
        Func::Coalesce => {
            let first = arg(0);
            if first.to_str().is_empty() {
                arg(1)
            } else {
                first
            }
        }
        Func::Concat => Value::Str((0..args.len()).map(text).collect()),
        Func::Count => match args.first() {
            Some(Node::Ref(name)) => Value::Num(scope.count(name) as f64),
            _ => Value::Num(f64::NAN),
        },
    }
}

/// `date()`: a number of days since the epoch, or a date or date-time string; anything
/// else is NaN, which compares false with everything.
fn to_date(v: Value) -> Value {
    let parsed = match &v {
        Value::Date(_) => Some(v.clone()),
        Value::DateTime(t) => Some(Value::Date(t.date_naive())),
        Value::Num(n) => date_of_days(*n).map(Value::Date),
        Value::Str(s) => match parse_temporal(s) {
            Some(Value::DateTime(t)) => Some(Value::Date(t.date_naive())),
            other => other,
        },
        Value::Bool(_) => None,
    };
    parsed.unwrap_or(Value::Num(f64::NAN))
}

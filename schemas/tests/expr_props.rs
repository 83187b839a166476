//! Property tests of form expressions: parsing never panics, the canonical text parses
//! back to the same meaning, and evaluation agrees with a reference evaluator written
//! here in the plainest way over numbers, booleans and empty answers.

use chrono::{DateTime, FixedOffset};
use proptest::prelude::*;
use tideline_schemas::expr::{Expr, Scope, Value};

/// A reference expression: what the generator builds, prints and evaluates itself.
#[derive(Debug, Clone)]
enum R {
    Num(i32),
    /// `${a}`, `${b}` or `${c}`: numeric answers, or empty.
    Ref(usize),
    Neg(Box<R>),
    Bin(&'static str, Box<R>, Box<R>),
    Not(Box<R>),
    If(Box<R>, Box<R>, Box<R>),
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const OPS: [&str; 13] = [
    "or", "and", "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "div", "mod",
];

/// What the reference computes with.
#[derive(Debug, Clone, Copy)]
enum V {
    Num(f64),
    Bool(bool),
    Empty,
}

impl V {
    fn num(self) -> f64 {
        match self {
            V::Num(n) => n,
            V::Bool(b) => f64::from(u8::from(b)),
            V::Empty => f64::NAN,
        }
    }
    fn truth(self) -> bool {
        match self {
            V::Num(n) => n != 0.0 && !n.is_nan(),
            V::Bool(b) => b,
            V::Empty => false,
        }
    }
}

fn reference(r: &R, answers: &[Option<f64>; 3]) -> V {
    match r {
        R::Num(n) => V::Num(f64::from(*n)),
        R::Ref(i) => answers[*i].map_or(V::Empty, V::Num),
        R::Neg(x) => V::Num(-reference(x, answers).num()),
        R::Not(x) => V::Bool(!reference(x, answers).truth()),
        R::If(c, a, b) => {
            if reference(c, answers).truth() {
                reference(a, answers)
            } else {
                reference(b, answers)
            }
        }
        R::Bin(op, a, b) => {
            let (x, y) = (reference(a, answers), reference(b, answers));
            // XPath 1.0 equality: booleans win, then numbers; two empties are equal strings.
            let equal = || match (x, y) {
                (V::Bool(_), _) | (_, V::Bool(_)) => x.truth() == y.truth(),
                (V::Empty, V::Empty) => true,
                _ => x.num() == y.num(),
            };
            match *op {
                "or" => V::Bool(x.truth() || y.truth()),
                "and" => V::Bool(x.truth() && y.truth()),
                "=" => V::Bool(equal()),
                "!=" => V::Bool(!equal()),
                "<" => V::Bool(x.num() < y.num()),
                "<=" => V::Bool(x.num() <= y.num()),
                ">" => V::Bool(x.num() > y.num()),
                ">=" => V::Bool(x.num() >= y.num()),
                "+" => V::Num(x.num() + y.num()),
                "-" => V::Num(x.num() - y.num()),
                "*" => V::Num(x.num() * y.num()),
                "div" => V::Num(x.num() / y.num()),
                _ => V::Num(x.num() % y.num()),
            }
        }
    }
}

/// Source text with every operation bracketed and random spacing.
fn print(r: &R, space: &mut impl Iterator<Item = bool>) -> String {
    let mut sp = || {
        if space.next().unwrap_or(false) {
            " "
        } else {
            ""
        }
    };
    match r {
        R::Num(n) if *n < 0 => format!("-{}", n.unsigned_abs()),
        R::Num(n) => n.to_string(),
        R::Ref(i) => format!("${{{}}}", NAMES[*i]),
        R::Neg(x) => {
            let s = sp();
            format!("-{s}({})", print(x, space))
        }
        R::Not(x) => format!("not({})", print(x, space)),
        R::If(c, a, b) => format!(
            "if({}, {}, {})",
            print(c, space),
            print(a, space),
            print(b, space)
        ),
        R::Bin(op, a, b) => {
            // Word operators need spaces; symbols may go without.
            let word = op.chars().all(|c| c.is_ascii_lowercase());
            let (l, rr) = if word { (" ", " ") } else { (sp(), sp()) };
            format!("({}{l}{op}{rr}{})", print(a, space), print(b, space))
        }
    }
}

fn tree() -> impl Strategy<Value = R> {
    let leaf = prop_oneof![(-50i32..50).prop_map(R::Num), (0usize..3).prop_map(R::Ref)];
    leaf.prop_recursive(5, 40, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|x| R::Neg(Box::new(x))),
            inner.clone().prop_map(|x| R::Not(Box::new(x))),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| R::If(
                Box::new(c),
                Box::new(a),
                Box::new(b)
            )),
            (0usize..OPS.len(), inner.clone(), inner).prop_map(|(op, a, b)| R::Bin(
                OPS[op],
                Box::new(a),
                Box::new(b)
            )),
        ]
    })
}

struct Answers([Option<f64>; 3]);

impl Scope for Answers {
    fn this(&self) -> Value {
        Value::empty()
    }
    fn answer(&self, name: &str) -> Value {
        match NAMES.iter().position(|n| *n == name) {
            Some(i) => self.0[i].map_or_else(Value::empty, Value::Num),
            None => Value::empty(),
        }
    }
    fn count(&self, _: &str) -> usize {
        0
    }
    fn now(&self) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z").expect("fixed instant")
    }
}

fn same(ours: &Value, theirs: V) -> bool {
    match (ours, theirs) {
        (Value::Num(a), V::Num(b)) => a == &b || (a.is_nan() && b.is_nan()),
        (Value::Bool(a), V::Bool(b)) => *a == b,
        (Value::Str(s), V::Empty) => s.is_empty(),
        _ => false,
    }
}

fn answers() -> impl Strategy<Value = [Option<f64>; 3]> {
    let one = || prop::option::of((-20i32..20).prop_map(f64::from));
    [one(), one(), one()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluation_agrees_with_the_reference(
        r in tree(),
        values in answers(),
        spaces in prop::collection::vec(any::<bool>(), 64),
    ) {
        let src = print(&r, &mut spaces.into_iter().cycle());
        let expr = Expr::parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let ours = expr.eval(&Answers(values));
        let theirs = reference(&r, &values);
        prop_assert!(same(&ours, theirs), "{src} with {values:?}: {ours:?} vs {theirs:?}");
    }

    #[test]
    fn chains_without_brackets_fold_left_by_precedence(
        first in -9i32..10,
        rest in prop::collection::vec((0usize..5, -9i32..10), 1..6),
    ) {
        // Only + - * div mod: the reference folds * div mod first, then + -, each
        // from the left, which is what XPath's grammar means.
        const ARITH: [&str; 5] = ["+", "-", "*", "div", "mod"];
        let mut src = first.to_string();
        for (op, n) in &rest {
            src.push_str(&format!(" {} {n}", ARITH[*op]));
        }
        let mut terms = vec![(None, f64::from(first))];
        for (op, n) in &rest {
            let n = f64::from(*n);
            match ARITH[*op] {
                "*" | "div" | "mod" => {
                    let last = &mut terms.last_mut().expect("one term").1;
                    *last = match ARITH[*op] { "*" => *last * n, "div" => *last / n, _ => *last % n };
                }
                sign => terms.push((Some(sign), n)),
            }
        }
        let wanted = terms.iter().fold(0.0, |acc, (sign, t)| match sign {
            Some("-") => acc - t,
            _ => acc + t,
        });
        let got = Expr::parse(&src).expect("a chain parses").eval(&Answers([None; 3])).to_num();
        prop_assert!(got == wanted || (got.is_nan() && wanted.is_nan()), "{src}: {got} vs {wanted}");
    }

    #[test]
    fn the_canonical_text_means_the_same(r in tree(), values in answers()) {
        let src = print(&r, &mut std::iter::repeat(true));
        let expr = Expr::parse(&src).expect("generated expressions parse");
        let again = Expr::parse(&expr.canonical()).expect("canonical text parses");
        prop_assert_eq!(again.canonical(), expr.canonical());
        let scope = Answers(values);
        let (a, b) = (expr.eval(&scope), again.eval(&scope));
        prop_assert!(a == b || (a.to_num().is_nan() && b.to_num().is_nan()), "{src}");
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(
        src in "[ -~]{0,80}",
        soup in prop::collection::vec(prop::sample::select(vec![
            "(", ")", ",", ".", "${a}", "${crew}", "'x'", "\"y\"", "1", "2.5", "-", "+", "*",
            "div", "mod", "and", "or", "=", "!=", "<", ">=", "selected(", "count(", "regex(",
            "today()", "date(", "if(", "not(", "coalesce(", "concat(",
        ]), 0..40),
    ) {
        for text in [src, soup.join(" ")] {
            if let Ok(expr) = Expr::parse(&text) {
                let _ = expr.eval(&Answers([Some(1.0), None, Some(0.0)]));
                prop_assert!(Expr::parse(&expr.canonical()).is_ok(), "{text}");
            }
        }
    }
}

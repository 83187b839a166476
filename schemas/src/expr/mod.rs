//! Form expressions: the subset of XPath 1.0 that XLSForms write in `relevant` and
//! `constraint`, parsed once and evaluated against a record's answers.
//!
//! `.` is the answer the expression belongs to, `${name}` another answer (inside a
//! repeat, the sibling in the same item). Answers arrive typed like ODK types them; an
//! empty answer is `''`. Evaluation is total: it never fails, so a record that arrived by
//! sync can always be judged. docs/FORMS.md lists the operators and functions.
//!
//! ```
//! use chrono::{DateTime, FixedOffset};
//! use tideline_schemas::expr::{Expr, Scope, Value};
//!
//! struct Answers;
//! impl Scope for Answers {
//!     fn this(&self) -> Value { Value::Num(3.0) }
//!     fn answer(&self, name: &str) -> Value {
//!         match name {
//!             "contraband_found" => Value::Bool(true),
//!             "arrests" => Value::Num(2.0),
//!             _ => Value::empty(),
//!         }
//!     }
//!     fn count(&self, _repeat: &str) -> usize { 0 }
//!     fn now(&self) -> DateTime<FixedOffset> {
//!         DateTime::parse_from_rfc3339("2026-12-02T10:00:00-04:00").unwrap()
//!     }
//! }
//!
//! let limit = Expr::parse(". <= ${arrests} + 1 and ${contraband_found}")?;
//! assert!(limit.eval_bool(&Answers));
//! assert_eq!(limit.names(), ["arrests", "contraband_found"]);
//! let late = Expr::parse("date('2026-12-03') > today()")?;
//! assert!(late.eval_bool(&Answers));
//! assert!(Expr::parse("${a} ==").is_err());
//! # Ok::<(), tideline_schemas::expr::ExprError>(())
//! ```

mod eval;
mod parse;
mod tree;
pub mod value;

#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde_json::json;

pub use value::Value;

use tree::Node;

/// Longer expressions are refused; real forms' are a few hundred bytes at most.
pub const MAX_EXPR_BYTES: usize = 4096;
/// Deeper nesting is refused, which bounds the parser's and the evaluator's stacks.
pub const MAX_DEPTH: usize = 64;

/// Where an expression's answers come from.
pub trait Scope {
    /// `.`: the answer the expression belongs to.
    fn this(&self) -> Value;
    /// `${name}`: the answer called `name`, or `''` when there is none.
    fn answer(&self, name: &str) -> Value;
    /// `count(${name})`: the number of items of the repeat `name`.
    fn count(&self, repeat: &str) -> usize;
    /// The moment `today()` and `now()` read, with the offset they are read in.
    fn now(&self) -> DateTime<FixedOffset>;
}

/// An expression that does not parse: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at})")]
pub struct ExprError {
    /// Character offset, from 1.
    pub at: usize,
    pub message: String,
}

/// A parsed expression. Two expressions are equal when their source text is.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    node: Node,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Expr {
    /// Parses `source`; regex literals are compiled here, once.
    pub fn parse(source: &str) -> Result<Expr, ExprError> {
        Ok(Expr {
            source: source.to_string(),
            node: parse::parse(source)?,
        })
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression's value.
    pub fn eval(&self, scope: &dyn Scope) -> Value {
        eval::eval(&self.node, scope)
    }

    /// The expression's value as XPath `boolean()` reads it.
    pub fn eval_bool(&self, scope: &dyn Scope) -> bool {
        self.eval(scope).to_bool()
    }

    /// Every `${name}` referred to, in order of first appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        walk(&self.node, &mut |node| {
            if let Node::Ref(name) = node {
                if !out.contains(&name.as_str()) {
                    out.push(name.as_str());
                }
            }
        });
        out
    }

    /// The names given to `count()`, which must be repeats.
    pub fn counted(&self) -> Vec<&str> {
        let mut out = Vec::new();
        walk(&self.node, &mut |node| {
            if let Node::Call(tree::Func::Count, args) = node {
                if let Some(Node::Ref(name)) = args.first() {
                    out.push(name.as_str());
                }
            }
        });
        out
    }

    /// The names referred to other than as the argument of `count()`: those whose
    /// answer the expression reads.
    pub fn bare_names(&self) -> Vec<&str> {
        let mut refs = Vec::new();
        walk(&self.node, &mut |node| {
            if let Node::Ref(name) = node {
                refs.push(name.as_str());
            }
        });
        // Each count(${name}) holds exactly one of them.
        for counted in self.counted() {
            if let Some(i) = refs.iter().position(|r| *r == counted) {
                refs.remove(i);
            }
        }
        refs
    }

    /// The tree as compact JSON, for the web form's evaluator (`server/assets/relevance.js`):
    /// `["num",1]`, `["str","a"]`, `["dot"]`, `["ref","name"]`, `["neg",x]`,
    /// `["op","+",a,b]`, `["call","selected",[args]]`, `["regex",x,"pattern"]`.
    pub fn to_json(&self) -> serde_json::Value {
        to_json(&self.node)
    }

    /// Source text for the same tree with every operation bracketed: what a reader
    /// sees when precedence matters, and what the property tests parse back.
    pub fn canonical(&self) -> String {
        self.node.to_string()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn walk<'n>(node: &'n Node, visit: &mut dyn FnMut(&'n Node)) {
    visit(node);
    match node {
        Node::Neg(x) | Node::Regex(x, _) => walk(x, visit),
        Node::Bin(_, a, b) => {
            walk(a, visit);
            walk(b, visit);
        }
        Node::Call(_, args) => args.iter().for_each(|a| walk(a, visit)),
        Node::Num(_) | Node::Str(_) | Node::Dot | Node::Ref(_) => {}
    }
}

fn to_json(node: &Node) -> serde_json::Value {
    match node {
        Node::Num(n) => json!(["num", n]),
        Node::Str(s) => json!(["str", s]),
        Node::Dot => json!(["dot"]),
        Node::Ref(name) => json!(["ref", name]),
        Node::Neg(x) => json!(["neg", to_json(x)]),
        Node::Bin(op, a, b) => json!(["op", op.as_str(), to_json(a), to_json(b)]),
        Node::Call(func, args) => {
            let args: Vec<_> = args.iter().map(to_json).collect();
            json!(["call", func.name(), args])
        }
        Node::Regex(x, re) => json!(["regex", to_json(x), re.as_str()]),
    }
}

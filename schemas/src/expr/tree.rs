//! The parsed form of an expression, and the functions of the subset with their arities.

use std::fmt;

/// A node of a parsed expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Num(f64),
    Str(String),
    /// `.`: the answer the expression belongs to.
    Dot,
    /// `${name}`: another answer.
    Ref(String),
    Neg(Box<Node>),
    Bin(Op, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    /// `regex(s, 'literal')`, its pattern compiled once when the expression is parsed.
    Regex(Box<Node>, Box<regex::Regex>),
}

/// Binary operators, by XPath precedence from loosest to tightest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Or => "or",
            Op::And => "and",
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "div",
            Op::Mod => "mod",
        }
    }

    /// Binding strength: a higher level binds tighter.
    pub(crate) fn level(self) -> u8 {
        match self {
            Op::Or => 0,
            Op::And => 1,
            Op::Eq | Op::Ne => 2,
            Op::Lt | Op::Le | Op::Gt | Op::Ge => 3,
            Op::Add | Op::Sub => 4,
            Op::Mul | Op::Div | Op::Mod => 5,
        }
    }

    pub(crate) const ALL: [Op; 13] = [
        Op::Or,
        Op::And,
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Div,
        Op::Mod,
    ];
}

/// The functions of the subset (docs/FORMS.md lists what each does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Selected,
    CountSelected,
    StringLength,
    Regex,
    Contains,
    StartsWith,
    EndsWith,
    Today,
    Now,
    Date,
    DecimalDateTime,
    Int,
    Number,
    String,
    Boolean,
    Not,
    True,
    False,
    If,
    Coalesce,
    Concat,
    Count,
}

impl Func {
    pub(crate) const ALL: [Func; 22] = [
        Func::Selected,
        Func::CountSelected,
        Func::StringLength,
        Func::Regex,
        Func::Contains,
        Func::StartsWith,
        Func::EndsWith,
        Func::Today,
        Func::Now,
        Func::Date,
        Func::DecimalDateTime,
        Func::Int,
        Func::Number,
        Func::String,
        Func::Boolean,
        Func::Not,
        Func::True,
        Func::False,
        Func::If,
        Func::Coalesce,
        Func::Concat,
        Func::Count,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::Selected => "selected",
            Func::CountSelected => "count-selected",
            Func::StringLength => "string-length",
            Func::Regex => "regex",
            Func::Contains => "contains",
            Func::StartsWith => "starts-with",
            Func::EndsWith => "ends-with",
            Func::Today => "today",
            Func::Now => "now",
            Func::Date => "date",
            Func::DecimalDateTime => "decimal-date-time",
            Func::Int => "int",
            Func::Number => "number",
            Func::String => "string",
            Func::Boolean => "boolean",
            Func::Not => "not",
            Func::True => "true",
            Func::False => "false",
            Func::If => "if",
            Func::Coalesce => "coalesce",
            Func::Concat => "concat",
            Func::Count => "count",
        }
    }

    pub(crate) fn by_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The number of arguments taken: (least, most).
    pub(crate) fn arity(self) -> (usize, usize) {
        match self {
            Func::Today | Func::Now | Func::True | Func::False => (0, 0),
            Func::CountSelected
            | Func::StringLength
            | Func::Date
            | Func::DecimalDateTime
            | Func::Int
            | Func::Number
            | Func::String
            | Func::Boolean
            | Func::Not
            | Func::Count => (1, 1),
            Func::Selected
            | Func::Regex
            | Func::Contains
            | Func::StartsWith
            | Func::EndsWith
            | Func::Coalesce => (2, 2),
            Func::If => (3, 3),
            Func::Concat => (1, 16),
        }
    }
}

impl fmt::Display for Node {
    /// Source text that parses back to the same tree: every operation is bracketed
    /// unless it is a call or a leaf.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Num(n) => write!(f, "{}", super::value::number_to_string(*n)),
            Node::Str(s) if s.contains('\'') => write!(f, "\"{s}\""),
            Node::Str(s) => write!(f, "'{s}'"),
            Node::Dot => f.write_str("."),
            Node::Ref(name) => write!(f, "${{{name}}}"),
            Node::Neg(x) => write!(f, "-({x})"),
            Node::Bin(op, a, b) => write!(f, "({a} {} {b})", op.as_str()),
            Node::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
            Node::Regex(s, re) => {
                let pattern = re.as_str();
                if pattern.contains('\'') {
                    write!(f, "regex({s}, \"{pattern}\")")
                } else {
                    write!(f, "regex({s}, '{pattern}')")
                }
            }
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Node::Num(a), Node::Num(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Node::Str(a), Node::Str(b)) | (Node::Ref(a), Node::Ref(b)) => a == b,
            (Node::Dot, Node::Dot) => true,
            (Node::Neg(a), Node::Neg(b)) => a == b,
            (Node::Bin(o, a, b), Node::Bin(p, c, d)) => o == p && a == c && b == d,
            (Node::Call(f, a), Node::Call(g, b)) => f == g && a == b,
            (Node::Regex(a, r), Node::Regex(b, s)) => a == b && r.as_str() == s.as_str(),
            _ => false,
        }
    }
}

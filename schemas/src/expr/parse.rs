//! From source text to a [`Node`] tree: a lexer and a precedence-climbing parser for the
//! subset of XPath 1.0 that XLSForms use in `relevant` and `constraint`.
//!
//! Depth and length are bounded, so a hostile form cannot exhaust the stack.

use super::tree::{Func, Node, Op};
use super::{ExprError, MAX_DEPTH, MAX_EXPR_BYTES};
use crate::form::REGEX_SIZE_LIMIT;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Dot,
    Ref(String),
    Name(String),
    Sym(&'static str),
    Open,
    Close,
    Comma,
}

struct Lexed {
    tok: Tok,
    /// Character offset of the token's first character, from 1.
    at: usize,
}

fn err(at: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        at,
        message: message.into(),
    }
}

fn lex(src: &str) -> Result<Vec<Lexed>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::Open
            }
            ')' => {
                i += 1;
                Tok::Close
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '=' | '+' | '-' | '*' => {
                i += 1;
                Tok::Sym(match c {
                    '=' => "=",
                    '+' => "+",
                    '-' => "-",
                    _ => "*",
                })
            }
            '!' | '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                i += 1 + usize::from(eq);
                Tok::Sym(match (c, eq) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => return Err(err(at, "'!' must be followed by '=' (use not() to negate)")),
                })
            }
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .ok_or_else(|| err(at, "this string is never closed"))?;
                let s: String = chars[i + 1..i + 1 + end].iter().collect();
                i += end + 2;
                Tok::Str(s)
            }
            '$' => {
                if chars.get(i + 1) != Some(&'{') {
                    return Err(err(at, "'$' must start a reference such as ${name}"));
                }
                let end = chars[i + 2..]
                    .iter()
                    .position(|&d| d == '}')
                    .ok_or_else(|| err(at, "this ${...} reference is never closed"))?;
                let name: String = chars[i + 2..i + 2 + end].iter().collect();
                let good = name
                    .chars()
                    .next()
                    .is_some_and(|f| f.is_alphabetic() || f == '_')
                    && name
                        .chars()
                        .all(|d| d.is_alphanumeric() || matches!(d, '_' | '-' | '.'));
                if !good {
                    return Err(err(at, format!("${{{name}}} is not a valid field name")));
                }
                i += end + 3;
                Tok::Ref(name)
            }
            '.' if chars.get(i + 1) == Some(&'.') => {
                return Err(err(
                    at,
                    "'..' paths are not supported: refer to other answers as ${name}",
                ))
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                i += 1;
                Tok::Dot
            }
            '/' => {
                return Err(err(
                    at,
                    "paths such as /data/name are not supported: refer to other answers as ${name}",
                ))
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if chars.get(i) == Some(&'.') {
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                Tok::Num(
                    text.parse()
                        .map_err(|_| err(at, format!("{text} is not a number")))?,
                )
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | ':'))
                {
                    i += 1;
                }
                // A name never ends in '-': in `x-1` the minus is the operator.
                while chars[i - 1] == '-' {
                    i -= 1;
                }
                Tok::Name(chars[start..i].iter().collect())
            }
            other => return Err(err(at, format!("unexpected character {other:?}"))),
        };
        out.push(Lexed { tok, at });
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Lexed>,
    pos: usize,
    end: usize,
    depth: usize,
}

/// Parses `src` into a tree.
pub(crate) fn parse(src: &str) -> Result<Node, ExprError> {
    if src.len() > MAX_EXPR_BYTES {
        return Err(err(
            1,
            format!("expression is longer than {MAX_EXPR_BYTES} bytes"),
        ));
    }
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(err(1, "the expression is empty"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.chars().count() + 1,
        depth: 0,
    };
    let node = p.expr(0)?;
    if let Some(extra) = p.toks.get(p.pos) {
        return Err(err(
            extra.at,
            "unexpected text after the end of the expression",
        ));
    }
    Ok(node)
}

impl Parser {
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.at)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    /// The binary operator at the cursor, if any. `and`, `or`, `div` and `mod` are
    /// operators only where an operator can stand, which is the only place this asks.
    fn op(&self) -> Option<Op> {
        match self.peek()? {
            Tok::Sym(s) => Op::ALL
                .into_iter()
                .find(|op| op.as_str() == *s && !matches!(op, Op::Div | Op::Mod)),
            Tok::Name(n) => match n.as_str() {
                "or" => Some(Op::Or),
                "and" => Some(Op::And),
                "div" => Some(Op::Div),
                "mod" => Some(Op::Mod),
                _ => None,
            },
            _ => None,
        }
    }

    fn descend(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                self.at(),
                format!("expression nests deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    /// Operators binding at `level` or tighter, left-associative.
    fn expr(&mut self, level: u8) -> Result<Node, ExprError> {
        self.descend()?;
        let mut left = self.unary()?;
        while let Some(op) = self.op() {
            if op.level() < level {
                break;
            }
            self.pos += 1;
            let right = self.expr(op.level() + 1)?;
            left = Node::Bin(op, Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(&Tok::Sym("-")) {
            self.pos += 1;
            self.descend()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Neg(Box::new(inner)));
        }
        self.primary()
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(self.at(), format!("expected {what}")))
        }
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let at = self.at();
        let Some(tok) = self.peek().cloned() else {
            return Err(err(at, "the expression ends where a value was expected"));
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Node::Num(n)),
            Tok::Str(s) => Ok(Node::Str(s)),
            Tok::Dot => Ok(Node::Dot),
            Tok::Ref(name) => Ok(Node::Ref(name)),
            Tok::Open => {
                let inner = self.expr(0)?;
                self.expect(Tok::Close, "')'")?;
                Ok(inner)
            }
            Tok::Name(name) if self.peek() == Some(&Tok::Open) => self.call(&name, at),
            Tok::Name(name) => Err(err(
                at,
                format!("{name:?} is not a value: refer to answers as ${{name}} and quote text as '{name}'"),
            )),
            Tok::Close | Tok::Comma | Tok::Sym(_) => {
                Err(err(at, "a value was expected here"))
            }
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Node, ExprError> {
        let func = Func::by_name(name).ok_or_else(|| {
            err(
                at,
                format!(
                    "the function {name}() is not supported (docs/FORMS.md lists those that are)"
                ),
            )
        })?;
        self.pos += 1; // '('
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::Close) {
            loop {
                args.push(self.expr(0)?);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(Tok::Close, "',' or ')'")?;
        let (least, most) = func.arity();
        if args.len() < least || args.len() > most {
            let wanted = if least == most {
                format!("{least}")
            } else {
                format!("{least} to {most}")
            };
            return Err(err(
                at,
                format!("{name}() takes {wanted} argument(s), not {}", args.len()),
            ));
        }
        if func == Func::Count && !matches!(args[0], Node::Ref(_)) {
            return Err(err(at, "count() counts a repeat: write count(${name})"));
        }
        if func == Func::Regex {
            if let Node::Str(pattern) = &args[1] {
                let regex = regex::RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| err(at, format!("invalid regex {pattern:?}: {e}")))?;
                let subject = args.swap_remove(0);
                return Ok(Node::Regex(Box::new(subject), Box::new(regex)));
            }
        }
        Ok(Node::Call(func, args))
    }
}

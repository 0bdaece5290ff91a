//! Recursive descent over the tokens, with tcpdump's precedence (`not` binds tightest; `and`
//! and `or` bind equally, left to right) and its qualifier inheritance: a bare value after
//! `and`/`or`/`not` takes the qualifiers of the primitive before it (`host a or b` is
//! `host a or host b`, `tcp port 80 or 443` is `tcp port 80 or tcp port 443`). As in tcpdump,
//! a parenthesized group passes on the qualifiers from before it, and protocol keywords,
//! comparisons and `less`/`greater` pass on none, so a value after them is refused.
//!
//! Values are checked here (addresses, prefixes, ports, field sizes), so the tree is
//! always valid for lowering.

use crate::expr::ast::{DirQual, Layer, MAX_FIELD_REACH, Node, PROTO_KEYWORDS, Primitive};
use crate::expr::error::SyntaxError;
use crate::expr::lexer::{Tok, Token, lex};
use crate::expr::limits::{MAX_EXPR_DEPTH, MAX_EXPR_OPERATORS};
use crate::expr::names;
use crate::expr::value;
use crate::ir::{CmpOp, Family};

type Parsed = Result<(Node, Option<Qual>), SyntaxError>;

/// What a primitive's address type qualifier says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Host,
    Net,
    Port,
    Portrange,
    Proto,
}

/// The qualifiers of a primitive (`ip6 src net`), which a following bare value inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Qual {
    /// `ip`, `ip6`, `tcp`, `udp`, ... when given.
    pub pname: Option<&'static str>,
    pub dir: Option<DirQual>,
    pub kind: Option<Kind>,
}

/// Parses a whole expression.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let toks = lex(text)?;
    if toks.len() == 1 {
        return Err(SyntaxError::new(1, "", "the expression is empty")
            .hint("leave the filter out to capture every packet"));
    }
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        operators: 0,
    };
    let (node, _) = p.expr(None)?;
    let t = p.peek();
    if t.tok != Tok::End {
        let hint = match t.tok {
            Tok::RParen => "this ) has no matching (",
            _ => "join primitives with and, or, not (or &&, ||, !)",
        };
        return Err(p.err(t, "unexpected here").hint(hint));
    }
    Ok(node)
}

pub(crate) struct Parser {
    toks: Vec<Token>,
    i: usize,
    /// How many parentheses and `not`s enclose the current token: every recursive step of
    /// the descent goes through [`Parser::nest`], which refuses more than [`MAX_EXPR_DEPTH`].
    depth: usize,
    /// `and`/`or` operators read so far, at most [`MAX_EXPR_OPERATORS`] ([`Parser::join`]).
    operators: usize,
}

const PNAMES: &[&str] = &["ip", "ip6"];

fn pname_of(kw: &str) -> Option<&'static str> {
    PNAMES
        .iter()
        .copied()
        .chain(PROTO_KEYWORDS.iter().map(|(n, _, _)| *n))
        .find(|n| *n == kw)
}

impl Parser {
    pub(crate) fn peek(&self) -> &Token {
        &self.toks[self.i]
    }

    fn peek_kw(&self, ahead: usize) -> Option<String> {
        self.toks.get(self.i + ahead).and_then(Token::keyword)
    }

    pub(crate) fn bump(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    pub(crate) fn err(&self, t: &Token, message: impl Into<String>) -> SyntaxError {
        SyntaxError::new(t.pos, &t.text, message)
    }

    /// Enters one level of nesting at `t` (a `(` or a `not`); the caller calls
    /// [`Parser::unnest`] when the level is closed. Refused beyond [`MAX_EXPR_DEPTH`], before
    /// any deeper recursion, so no input can exhaust the stack.
    fn nest(&mut self, t: &Token) -> Result<(), SyntaxError> {
        if self.depth >= MAX_EXPR_DEPTH {
            return Err(self
                .err(
                    t,
                    format!(
                        "parentheses and not nest deeper than the limit of {MAX_EXPR_DEPTH} \
                         levels"
                    ),
                )
                .hint("remove redundant parentheses and double negations"));
        }
        self.depth += 1;
        Ok(())
    }

    fn unnest(&mut self) {
        self.depth -= 1;
    }

    /// Reads the `and`/`or` operator at the current token, refusing more than
    /// [`MAX_EXPR_OPERATORS`] of them: each one nests the tree one level deeper.
    fn join(&mut self) -> Result<(), SyntaxError> {
        let t = self.bump();
        if self.operators >= MAX_EXPR_OPERATORS {
            return Err(self
                .err(
                    &t,
                    format!(
                        "more and/or operators than the limit of {MAX_EXPR_OPERATORS} in one \
                         expression"
                    ),
                )
                .hint("use prefixes and port ranges instead of long lists"));
        }
        self.operators += 1;
        Ok(())
    }

    fn is_and_or(&self, ahead: usize) -> Option<bool> {
        let t = self.toks.get(self.i + ahead)?;
        match (&t.tok, t.keyword().as_deref()) {
            (Tok::AndAnd, _) | (_, Some("and")) => Some(true),
            (Tok::OrOr, _) | (_, Some("or")) => Some(false),
            _ => None,
        }
    }

    fn expr(&mut self, q: Option<Qual>) -> Parsed {
        let (mut left, mut q) = self.unary(q)?;
        while let Some(and) = self.is_and_or(0) {
            self.join()?;
            let (right, next_q) = self.unary(q)?;
            left = match and {
                true => Node::And(Box::new(left), Box::new(right)),
                false => Node::Or(Box::new(left), Box::new(right)),
            };
            q = next_q;
        }
        Ok((left, q))
    }

    fn is_not(&self) -> bool {
        let t = self.peek();
        t.tok == Tok::Bang || t.keyword().as_deref() == Some("not")
    }

    fn unary(&mut self, q: Option<Qual>) -> Parsed {
        if self.is_not() {
            let t = self.bump();
            self.nest(&t)?;
            let (n, q) = self.unary(q)?;
            self.unnest();
            return Ok((Node::Not(Box::new(n)), q));
        }
        self.primary(q)
    }

    fn primary(&mut self, q: Option<Qual>) -> Parsed {
        let t = self.peek().clone();
        match &t.tok {
            Tok::LParen => {
                self.bump();
                self.nest(&t)?;
                let (n, _) = self.expr(q)?;
                self.close(&t)?;
                self.unnest();
                Ok((n, q))
            }
            Tok::Word(w) => {
                let kw = w.to_ascii_lowercase();
                if let Some(hint) = names::unsupported(&kw) {
                    return Err(self.err(&t, format!("{kw} is not supported")).hint(hint));
                }
                if let Some(pname) = pname_of(&kw) {
                    return self.after_pname(pname);
                }
                match kw.as_str() {
                    "src" | "dst" | "host" | "net" | "port" | "portrange" | "proto" => {
                        let (n, q) = self.head_and_id(None)?;
                        Ok((n, Some(q)))
                    }
                    "less" | "greater" => {
                        self.bump();
                        let v = self.number_token("a packet length")?;
                        let op = if kw == "less" { CmpOp::Le } else { CmpOp::Ge };
                        Ok((Node::Prim(Primitive::Len { op, value: v }), None))
                    }
                    "len" => {
                        self.bump();
                        let (op, value) = self.comparison("len")?;
                        Ok((Node::Prim(Primitive::Len { op, value }), None))
                    }
                    "and" | "or" => Err(self
                        .err(&t, "expected a primitive before this operator")
                        .hint("and / or join two primitives, e.g. tcp and port 80")),
                    "mask" => Err(self
                        .err(&t, "mask must follow a network address")
                        .hint("write net 198.18.0.0 mask 255.254.0.0")),
                    _ => self.bare_value(q),
                }
            }
            Tok::Escaped(_) => self.bare_value(q),
            Tok::End => Err(self
                .err(&t, "the expression ends where a primitive was expected")
                .hint("complete it, e.g. ... and port 80")),
            _ => Err(self.err(&t, "expected a primitive here").hint(
                "primitives are host, net, port, portrange, proto, ip, ip6, tcp, udp, \
                       icmp, icmp6, less, greater and field comparisons such as tcp[13] & 2 != 0",
            )),
        }
    }

    /// Expects the `)` closing the `(` at `open`.
    pub(crate) fn close(&mut self, open: &Token) -> Result<(), SyntaxError> {
        let t = self.peek().clone();
        if t.tok == Tok::RParen {
            self.bump();
            return Ok(());
        }
        let hint = match t.tok {
            Tok::Arith(_) | Tok::Amp | Tok::Pipe => {
                "arithmetic in parentheses is not supported; write the comparison without them, \
                 e.g. tcp[13] & 2 != 0"
                    .to_owned()
            }
            _ => format!("close the ( at character {}", open.pos),
        };
        Err(self.err(&t, "expected )").hint(hint))
    }

    /// After `ip`, `tcp`, ...: a field comparison, qualifiers with a value, or the protocol alone.
    fn after_pname(&mut self, pname: &'static str) -> Parsed {
        let t = self.bump();
        let next = self.peek().clone();
        if next.tok == Tok::LBracket {
            let p = self.field(pname, &t)?;
            return Ok((Node::Prim(p), None));
        }
        match next.keyword().as_deref() {
            Some("src" | "dst" | "host" | "net" | "port" | "portrange" | "proto") => {
                let (n, q) = self.head_and_id(Some(pname))?;
                Ok((n, Some(q)))
            }
            Some(kw) if names::unsupported(kw).is_some() => Err(self
                .err(&next, format!("{pname} {kw} is not supported"))
                .hint(names::unsupported(kw).unwrap_or_default())),
            _ => {
                let prim = match pname {
                    "ip" => Primitive::Family(Family::V4),
                    "ip6" => Primitive::Family(Family::V6),
                    _ => {
                        let (_, family, proto) = PROTO_KEYWORDS
                            .iter()
                            .copied()
                            .find(|(n, _, _)| *n == pname)
                            .unwrap_or(("", None, 0));
                        Primitive::Proto { family, proto }
                    }
                };
                Ok((Node::Prim(prim), None))
            }
        }
    }

    /// `src`, `dst`, `src or dst`, `dst or src`, `src and dst`, `dst and src`, or nothing.
    fn dqual(&mut self) -> Option<DirQual> {
        let first = self.peek_kw(0)?;
        let one = match first.as_str() {
            "src" => DirQual::Src,
            "dst" => DirQual::Dst,
            _ => return None,
        };
        let other = if one == DirQual::Src { "dst" } else { "src" };
        match (self.is_and_or(1), self.peek_kw(2).as_deref()) {
            (Some(and), Some(w)) if w == other => {
                self.bump();
                self.bump();
                self.bump();
                Some(if and { DirQual::Both } else { DirQual::Either })
            }
            _ => {
                self.bump();
                Some(one)
            }
        }
    }

    /// Qualifiers (`[pname] [dir] [kind]`) and the value, or a parenthesized list of values
    /// that all take the qualifiers (`host (a or b)`).
    fn head_and_id(&mut self, pname: Option<&'static str>) -> Result<(Node, Qual), SyntaxError> {
        let dir = self.dqual();
        let t = self.peek().clone();
        let kind = match t.keyword().as_deref() {
            Some("host") => Some(Kind::Host),
            Some("net") => Some(Kind::Net),
            Some("port") => Some(Kind::Port),
            Some("portrange") => Some(Kind::Portrange),
            Some("proto") if dir.is_some() => {
                return Err(self
                    .err(&t, "src and dst do not apply to proto")
                    .hint("write proto N, ip proto N or ip6 proto N"));
            }
            Some("proto") => Some(Kind::Proto),
            Some(kw) if names::unsupported(kw).is_some() => {
                return Err(self
                    .err(&t, format!("{kw} is not supported"))
                    .hint(names::unsupported(kw).unwrap_or_default()));
            }
            _ => None,
        };
        if kind.is_some() {
            self.bump();
        }
        let q = Qual { pname, dir, kind };
        let node = match self.peek().tok {
            Tok::LParen => self.id_group(q)?,
            _ => Node::Prim(self.id(q)?),
        };
        Ok((node, q))
    }

    /// `( value (and|or) [not] value ... )` after qualifiers.
    fn id_group(&mut self, q: Qual) -> Result<Node, SyntaxError> {
        let open = self.bump();
        self.nest(&open)?;
        let mut node = self.id_item(q)?;
        while let Some(and) = self.is_and_or(0) {
            self.join()?;
            let right = self.id_item(q)?;
            node = match and {
                true => Node::And(Box::new(node), Box::new(right)),
                false => Node::Or(Box::new(node), Box::new(right)),
            };
        }
        self.close(&open)?;
        self.unnest();
        Ok(node)
    }

    fn id_item(&mut self, q: Qual) -> Result<Node, SyntaxError> {
        if self.is_not() {
            let t = self.bump();
            self.nest(&t)?;
            let n = self.id_item(q)?;
            self.unnest();
            return Ok(Node::Not(Box::new(n)));
        }
        match self.peek().tok {
            Tok::LParen => self.id_group(q),
            _ => Ok(Node::Prim(self.id(q)?)),
        }
    }

    /// A value with no qualifier of its own: it takes the inherited ones, if there are any.
    fn bare_value(&mut self, q: Option<Qual>) -> Parsed {
        let Some(q) = q else {
            let t = self.peek().clone();
            let looks_like_value = t.text.starts_with(|c: char| c.is_ascii_digit() || c == ':');
            return Err(match looks_like_value {
                true => self.err(&t, "a value needs a qualifier such as host, net or port").hint(
                    "tcpdump lets a value borrow the qualifiers of the primitive just before it \
                     (host a or b), but there is none here; write host, net, port, ... before it",
                ),
                false => self.err(&t, "unknown word").hint(
                    "expected host, net, port, portrange, proto, src, dst, ip, ip6, tcp, udp, \
                     sctp, icmp, icmp6, less, greater, len, not, or a field such as tcp[13]",
                ),
            });
        };
        let p = self.id(q)?;
        Ok((Node::Prim(p), Some(q)))
    }

    /// The value of a primitive with qualifiers `q`.
    fn id(&mut self, q: Qual) -> Result<Primitive, SyntaxError> {
        let t = self.peek().clone();
        if !matches!(t.tok, Tok::Word(_) | Tok::Escaped(_)) {
            let what = match q.kind {
                Some(Kind::Port) => "a port number",
                Some(Kind::Portrange) => "a port range such as 1024-65535",
                Some(Kind::Proto) => "a protocol number or name",
                Some(Kind::Net) => "a network",
                _ => "an address",
            };
            return Err(self.err(&t, format!("expected {what}")));
        }
        let dir = q.dir.unwrap_or(DirQual::Either);
        match q.kind.unwrap_or(Kind::Host) {
            Kind::Host => value::host(self, q.pname, dir),
            Kind::Net => value::net(self, q.pname, dir),
            Kind::Port => value::port(self, q.pname, dir, false),
            Kind::Portrange => value::port(self, q.pname, dir, true),
            Kind::Proto => value::proto(self, q.pname),
        }
    }

    /// A number token (decimal or `0x` hex), described as `what` in errors.
    pub(crate) fn number_token(&mut self, what: &str) -> Result<u32, SyntaxError> {
        let t = self.bump();
        match &t.tok {
            Tok::Word(w) => names::number(w)
                .map_err(|why| self.err(&t, format!("expected {what}: {w} is {why}"))),
            _ => Err(self.err(&t, format!("expected {what}"))),
        }
    }

    /// `LAYER[offset(:size)] (& mask)* OP value`, `LAYER` already read as `t`.
    fn field(&mut self, pname: &'static str, t: &Token) -> Result<Primitive, SyntaxError> {
        let layer = match pname {
            "ip" => Layer::Ip,
            "ip6" => Layer::Ip6,
            "tcp" => Layer::Tcp,
            "udp" => Layer::Udp,
            "icmp" => Layer::Icmp,
            "icmp6" => Layer::Icmp6,
            other => {
                return Err(self
                    .err(t, format!("{other}[] is not supported"))
                    .hint("supported fields: ip[], ip6[], tcp[], udp[], icmp[], icmp6[]"));
            }
        };
        let open = self.bump();
        let offset_tok = self.peek().clone();
        if offset_tok
            .keyword()
            .is_some_and(|k| pname_of(&k).is_some() || k == "len")
        {
            return Err(self
                .err(&offset_tok, "only a constant byte offset is supported")
                .hint("write a number or a named offset such as tcp[tcpflags] or icmp[icmptype]"));
        }
        let offset = self.constant_token("a byte offset")?;
        let size = match self.peek().tok {
            Tok::Colon => {
                self.bump();
                let st = self.peek().clone();
                match self.number_token("a field size")? {
                    s @ (1 | 2 | 4) => s as u8,
                    _ => {
                        return Err(self
                            .err(&st, "a field size must be 1, 2 or 4 bytes")
                            .hint("write e.g. ip[6:2]"));
                    }
                }
            }
            _ => 1,
        };
        let close = self.peek().clone();
        if close.tok != Tok::RBracket {
            return Err(self.err(&close, "expected ]").hint(format!(
                "only a constant offset (and :size) fits between the [ at character {} and ]",
                open.pos
            )));
        }
        self.bump();
        let end = u64::from(offset) + u64::from(size);
        if end > u64::from(MAX_FIELD_REACH) {
            return Err(self
                .err(
                    &offset_tok,
                    format!(
                        "{}[{offset}:{size}] reads past byte {MAX_FIELD_REACH} of the header",
                        layer.name(),
                    ),
                )
                .hint(format!(
                    "fields reach the first {MAX_FIELD_REACH} bytes from the start of their \
                     header (beyond byte {} of {}[], only where the whole filter is one \
                     nftables rule)",
                    layer.max_len(),
                    layer.name()
                )));
        }
        let max = u32::MAX >> (32 - 8 * u32::from(size));
        let mut mask = None;
        while self.peek().tok == Tok::Amp {
            self.bump();
            let mt = self.peek().clone();
            let m = self.constant_atom()?;
            if m > max {
                return Err(self.err(&mt, format!("mask {m:#x} is wider than {size} byte(s)")));
            }
            mask = Some(mask.unwrap_or(max) & m);
        }
        let name = format!("{}[{offset}:{size}]", layer.name());
        let vt = self.toks.get(self.i + 1).cloned();
        let (op, value) = self.comparison(&name)?;
        if value > max {
            let at = vt.unwrap_or_else(|| self.peek().clone());
            return Err(self.err(
                &at,
                format!("{value} does not fit in the {size} byte(s) {name} reads"),
            ));
        }
        Ok(Primitive::Field {
            layer,
            offset: offset as u16,
            size,
            mask,
            op,
            value,
        })
    }

    /// `OP constant` after `what` (a field or `len`).
    fn comparison(&mut self, what: &str) -> Result<(CmpOp, u32), SyntaxError> {
        let t = self.peek().clone();
        let op = match t.tok {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Arith(_) | Tok::Pipe => {
                return Err(self
                    .err(&t, "arithmetic on packet fields is not supported")
                    .hint(ARITH_HINT));
            }
            _ => {
                return Err(self
                    .err(
                        &t,
                        format!("expected a comparison (==, !=, <, <=, >, >=) after {what}"),
                    )
                    .hint(ARITH_HINT));
            }
        };
        self.bump();
        let value = self.constant()?;
        let after = self.peek().clone();
        if matches!(after.tok, Tok::Arith(_)) {
            return Err(self
                .err(&after, "arithmetic on packet fields is not supported")
                .hint(ARITH_HINT));
        }
        Ok((op, value))
    }

    /// A constant: numbers and named constants joined by `|` and `&` (tighter), in
    /// parentheses or not: `(tcp-syn|tcp-ack)`.
    fn constant(&mut self) -> Result<u32, SyntaxError> {
        let mut v = self.constant_and()?;
        while self.peek().tok == Tok::Pipe {
            self.bump();
            v |= self.constant_and()?;
        }
        Ok(v)
    }

    fn constant_and(&mut self) -> Result<u32, SyntaxError> {
        let mut v = self.constant_atom()?;
        while self.peek().tok == Tok::Amp {
            self.bump();
            v &= self.constant_atom()?;
        }
        Ok(v)
    }

    fn constant_atom(&mut self) -> Result<u32, SyntaxError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::LParen => {
                self.bump();
                self.nest(&t)?;
                let v = self.constant()?;
                self.close(&t)?;
                self.unnest();
                Ok(v)
            }
            Tok::Arith(_) => Err(self
                .err(&t, "arithmetic on packet fields is not supported")
                .hint(ARITH_HINT)),
            _ => self.constant_token("a number"),
        }
    }

    /// A number or one of tcpdump's named constants (`tcp-syn`, `icmp-echo`, `tcpflags`).
    fn constant_token(&mut self, what: &str) -> Result<u32, SyntaxError> {
        if let Some(v) = self.peek().keyword().and_then(|k| names::constant(&k)) {
            self.bump();
            return Ok(v);
        }
        let t = self.peek().clone();
        self.number_token(what).map_err(|e| match &t.tok {
            Tok::Word(w) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                self.err(&t, format!("unknown constant {w}")).hint(
                    "named constants are tcpflags, tcp-fin, tcp-syn, tcp-rst, tcp-push, \
                       tcp-ack, tcp-urg, tcp-ece, tcp-cwr, icmptype, icmpcode, icmp-echo, ..., \
                       icmp6type, icmp6code, icmp6-echo, ...",
                )
            }
            _ => e,
        })
    }
}

const ARITH_HINT: &str = "supported comparisons are FIELD [& MASK] OP VALUE and len OP VALUE, \
    e.g. tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn, ip[6:2] & 0x1fff != 0, len > 100";

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;

//! Splits an expression into tokens, each with its 1-based character position.
//!
//! Words are runs of letters, digits and `_ . -` (so `tcp-syn`, `1024-2048` and `198.18.0.1` are
//! one word each), plus `:` outside brackets (IPv6 addresses) but not inside (`tcp[13:2]`). A
//! backslash before a word marks it as a name rather than a keyword (`proto \tcp`). Operators
//! are tokens of their own, including the arithmetic ones the parser refuses, so that refusal
//! can name them.

use crate::expr::error::SyntaxError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Word(String),
    /// `\name`.
    Escaped(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Colon,
    Slash,
    /// `&`
    Amp,
    /// `|`
    Pipe,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!`
    Bang,
    /// `=` or `==`
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// An arithmetic operator: `+ - * % ^ << >>`.
    Arith(&'static str),
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// 1-based character position of the first character.
    pub pos: usize,
    /// The text as written (empty for [`Tok::End`]).
    pub text: String,
}

impl Token {
    /// The word, lowercased, when this is an unescaped word.
    pub fn keyword(&self) -> Option<String> {
        match &self.tok {
            Tok::Word(w) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }
}

fn is_word_char(c: char, in_brackets: bool) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') || (c == ':' && !in_brackets)
}

/// Tokens of `input`, ending with [`Tok::End`]. Fails on a character no token starts with.
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut brackets = 0usize;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let two = |tok: Tok, s: &str| (tok, s.to_owned(), 2);
        let one = |tok: Tok, c: char| (tok, c.to_string(), 1);
        let (tok, text, len) = match (c, next) {
            ('(', _) => one(Tok::LParen, c),
            (')', _) => one(Tok::RParen, c),
            ('[', _) => {
                brackets += 1;
                one(Tok::LBracket, c)
            }
            (']', _) => {
                brackets = brackets.saturating_sub(1);
                one(Tok::RBracket, c)
            }
            (':', Some(':')) if brackets == 0 => word(&chars, i, brackets),
            (':', _) => one(Tok::Colon, c),
            ('/', _) => one(Tok::Slash, c),
            ('&', Some('&')) => two(Tok::AndAnd, "&&"),
            ('&', _) => one(Tok::Amp, c),
            ('|', Some('|')) => two(Tok::OrOr, "||"),
            ('|', _) => one(Tok::Pipe, c),
            ('!', Some('=')) => two(Tok::Ne, "!="),
            ('!', _) => one(Tok::Bang, c),
            ('=', Some('=')) => two(Tok::Eq, "=="),
            ('=', _) => one(Tok::Eq, c),
            ('<', Some('=')) => two(Tok::Le, "<="),
            ('<', Some('<')) => two(Tok::Arith("<<"), "<<"),
            ('<', _) => one(Tok::Lt, c),
            ('>', Some('=')) => two(Tok::Ge, ">="),
            ('>', Some('>')) => two(Tok::Arith(">>"), ">>"),
            ('>', _) => one(Tok::Gt, c),
            ('+', _) => one(Tok::Arith("+"), c),
            ('-', _) => one(Tok::Arith("-"), c),
            ('*', _) => one(Tok::Arith("*"), c),
            ('%', _) => one(Tok::Arith("%"), c),
            ('^', _) => one(Tok::Arith("^"), c),
            ('\\', Some(n)) if is_word_char(n, brackets > 0) => {
                let (tok, text, len) = word(&chars, i + 1, brackets);
                let Tok::Word(w) = tok else {
                    unreachable!("word() returns a word")
                };
                (Tok::Escaped(w), format!("\\{text}"), len + 1)
            }
            ('\\', _) => {
                return Err(
                    SyntaxError::new(pos, "\\", "a backslash must be followed by a name")
                        .hint("write proto \\tcp or simply proto tcp"),
                );
            }
            (c, _) if is_word_char(c, brackets > 0) => word(&chars, i, brackets),
            (c, _) => {
                return Err(SyntaxError::new(
                    pos,
                    &c.to_string(),
                    "this character cannot appear in a filter expression",
                ));
            }
        };
        out.push(Token { tok, pos, text });
        i += len;
    }
    out.push(Token {
        tok: Tok::End,
        pos: chars.len() + 1,
        text: String::new(),
    });
    Ok(out)
}

fn word(chars: &[char], start: usize, brackets: usize) -> (Tok, String, usize) {
    let len = chars[start..]
        .iter()
        .take_while(|c| is_word_char(**c, brackets > 0))
        .count();
    let text: String = chars[start..start + len].iter().collect();
    (Tok::Word(text.clone()), text, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Tok, usize)> {
        lex(s)
            .unwrap()
            .into_iter()
            .map(|t| (t.tok, t.pos))
            .collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }

    #[test]
    fn words_operators_and_positions() {
        assert_eq!(
            kinds("tcp[13:2] & tcp-syn != 0"),
            [
                (w("tcp"), 1),
                (Tok::LBracket, 4),
                (w("13"), 5),
                (Tok::Colon, 7),
                (w("2"), 8),
                (Tok::RBracket, 9),
                (Tok::Amp, 11),
                (w("tcp-syn"), 13),
                (Tok::Ne, 21),
                (w("0"), 24),
                (Tok::End, 25),
            ]
        );
        assert_eq!(
            kinds("!ip6&&(net 2001:db8::/32||::1)"),
            [
                (Tok::Bang, 1),
                (w("ip6"), 2),
                (Tok::AndAnd, 5),
                (Tok::LParen, 7),
                (w("net"), 8),
                (w("2001:db8::"), 12),
                (Tok::Slash, 22),
                (w("32"), 23),
                (Tok::OrOr, 25),
                (w("::1"), 27),
                (Tok::RParen, 30),
                (Tok::End, 31),
            ]
        );
    }

    #[test]
    fn escapes_and_arithmetic() {
        assert_eq!(
            kinds("proto \\tcp"),
            [
                (w("proto"), 1),
                (Tok::Escaped("tcp".into()), 7),
                (Tok::End, 11)
            ]
        );
        assert_eq!(
            kinds("ip[2:2]-20 >= 1 << 2"),
            [
                (w("ip"), 1),
                (Tok::LBracket, 3),
                (w("2"), 4),
                (Tok::Colon, 5),
                (w("2"), 6),
                (Tok::RBracket, 7),
                (Tok::Arith("-"), 8),
                (w("20"), 9),
                (Tok::Ge, 12),
                (w("1"), 15),
                (Tok::Arith("<<"), 17),
                (w("2"), 20),
                (Tok::End, 21),
            ]
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let err = lex("port 80 and é").unwrap_err();
        assert_eq!((err.position, err.token.as_str()), (13, "é"));
        let err = lex("ü port $").unwrap_err();
        assert_eq!(err.position, 1);
        assert_eq!(lex("host ::1 ").unwrap().last().unwrap().pos, 10);
    }
}

//! Text analysis, the same for indexing and for queries: words split at
//! anything that is not a letter or digit and at camelCase humps,
//! lowercased, English plurals folded; CJK text as single characters and
//! character pairs.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the analyzer is registered under in the index.
pub(super) const TOKENIZER: &str = "mesh";

/// What kind of token a piece of text became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    /// A word, or one part of a camelCase word.
    Word,
    /// A camelCase word as a whole (`customerid` for `customerId`), next
    /// to its parts.
    Joined,
    /// One CJK character.
    CjkChar,
    /// Two adjacent CJK characters.
    CjkPair,
}

/// Han, kana and hangul: scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}'      // hiragana, katakana
        | '\u{3400}'..='\u{4dbf}'    // CJK extension A
        | '\u{4e00}'..='\u{9fff}'    // CJK unified ideographs
        | '\u{ac00}'..='\u{d7af}'    // hangul syllables
        | '\u{f900}'..='\u{faff}'    // CJK compatibility ideographs
        | '\u{20000}'..='\u{2fa1f}') // CJK extensions B and later
}

/// Lowercases `word` into `out` and folds a plural ending: `-ies` becomes
/// `-y`, a final `s` is dropped unless the word ends in `ss`, `us` or `is`
/// (`customers` → `customer`, `categories` → `category`, `status` and
/// `address` stay). Only ASCII words of four letters or more are folded.
/// Both sides of a match go through it, so a wrong fold (`news` → `new`)
/// costs nothing but a little precision.
pub(super) fn normalize(word: &str, out: &mut String) {
    out.clear();
    if word.is_ascii() {
        out.push_str(word);
        out.make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    let b = out.as_bytes();
    if b.len() < 4 || !b.iter().all(u8::is_ascii_alphabetic) {
        return;
    }
    if out.ends_with("ies") && b.len() > 4 {
        out.truncate(out.len() - 3);
        out.push('y');
    } else if out.ends_with('s') && !(out.ends_with("ss") || out.ends_with("us") || out.ends_with("is")) {
        out.pop();
    }
}

/// Calls `part` with each camelCase part of `word` and returns how many
/// there were. A word breaks before an upper-case letter that follows a
/// lower-case one (`customerId`), and before the last capital of a run of
/// capitals followed by a lower-case letter (`XMLHttp` → `XML`, `Http`).
fn camel_parts(word: &str, part: &mut dyn FnMut(&str)) -> usize {
    if word.is_ascii() && !word.bytes().skip(1).any(|b| b.is_ascii_uppercase()) {
        part(word);
        return 1;
    }
    let (mut start, mut parts) = (0, 0);
    let mut chars = word.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((at, c)) = chars.next() {
        let next_lower = chars.peek().is_some_and(|&(_, n)| n.is_lowercase());
        if let Some(p) = prev
            && c.is_uppercase()
            && (p.is_lowercase() || (p.is_uppercase() && next_lower))
        {
            part(&word[start..at]);
            parts += 1;
            start = at;
        }
        prev = Some(c);
    }
    part(&word[start..]);
    parts + 1
}

/// Tokens longer than this (in bytes) are dropped: hashes, encoded blobs.
const MAX_TOKEN: usize = 64;

/// Calls `emit` with every token of `text`, its kind and the byte range of
/// the run it came from.
pub(super) fn analyze(text: &str, emit: &mut dyn FnMut(&str, Piece, usize, usize)) {
    let mut buf = String::new();
    let mut word = |run: &str, from: usize, emit: &mut dyn FnMut(&str, Piece, usize, usize)| {
        let to = from + run.len();
        let mut emit_word = |t: &str, piece: Piece| {
            if t.len() <= MAX_TOKEN {
                emit(t, piece, from, to);
            }
        };
        let parts = camel_parts(run, &mut |part| {
            normalize(part, &mut buf);
            emit_word(&buf, Piece::Word);
        });
        if parts > 1 {
            normalize(run, &mut buf);
            emit_word(&buf, Piece::Joined);
        }
    };
    let cjk = |run: &str, from: usize, emit: &mut dyn FnMut(&str, Piece, usize, usize)| {
        let mut prev: Option<(usize, char)> = None;
        for (at, c) in run.char_indices() {
            let end = at + c.len_utf8();
            emit(&run[at..end], Piece::CjkChar, from, from + run.len());
            if let Some((p, _)) = prev {
                emit(&run[p..end], Piece::CjkPair, from, from + run.len());
            }
            prev = Some((at, c));
        }
    };
    // Runs of letters and digits of one kind (CJK or not).
    let mut run_start: Option<(usize, bool)> = None;
    for (at, c) in text.char_indices().chain([(text.len(), ' ')]) {
        let class = if c.is_ascii() {
            c.is_ascii_alphanumeric().then_some(false)
        } else {
            c.is_alphanumeric().then(|| is_cjk(c))
        };
        if let Some((from, was_cjk)) = run_start
            && class != Some(was_cjk)
        {
            if was_cjk {
                cjk(&text[from..at], from, emit)
            } else {
                word(&text[from..at], from, emit)
            }
            run_start = None;
        }
        if run_start.is_none()
            && let Some(is) = class
        {
            run_start = Some((at, is));
        }
    }
}

/// The analyzer as a tantivy tokenizer (index side). Token buffers are
/// reused from one text to the next.
#[derive(Debug, Clone, Default)]
pub(super) struct MeshTokenizer {
    tokens: Vec<Token>,
}

/// The tokens of one text, produced all at once.
#[derive(Debug)]
pub(super) struct MeshTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

impl Tokenizer for MeshTokenizer {
    type TokenStream<'a> = MeshTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MeshTokenStream<'a> {
        let tokens = &mut self.tokens;
        let mut n = 0;
        analyze(text, &mut |t, _, from, to| {
            if n == tokens.len() {
                tokens.push(Token::default());
            }
            let token = &mut tokens[n];
            token.text.clear();
            token.text.push_str(t);
            (token.offset_from, token.offset_to, token.position, token.position_length) = (from, to, n, 1);
            n += 1;
        });
        MeshTokenStream { tokens: &mut self.tokens[..n], next: 0 }
    }
}

impl TokenStream for MeshTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    // Only called after `advance` returned true.
    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next.saturating_sub(1)]
    }
}

/// How one query token takes part in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QueryTerm {
    /// The normalized token.
    pub text: String,
    /// A product must contain it (otherwise it only adds to the score).
    pub required: bool,
    /// Also match indexed words that start with it.
    pub prefix: bool,
}

/// Words dropped from a query that has other words: they carry no meaning
/// for discovery, and `AND`, `OR`, `NOT` are query syntax we do not speak.
const STOPWORDS: [&str; 14] = ["a", "an", "and", "by", "for", "in", "is", "not", "of", "on", "or", "the", "to", "with"];

/// At most this many tokens of a query are used (a pasted paragraph must
/// not cost a hundred clauses).
pub(super) const MAX_QUERY_TERMS: usize = 16;

/// The terms of a user query. Words are required and match as prefixes
/// from two characters on; a camelCase whole only adds to the score; CJK
/// characters are required and CJK pairs add to the score, so `客户数据`
/// finds `客户主数据` and ranks exact adjacency higher.
pub(super) fn query_terms(query: &str) -> Vec<QueryTerm> {
    let mut terms: Vec<QueryTerm> = Vec::new();
    analyze(query, &mut |t, piece, _, _| {
        if terms.iter().any(|q| q.text == t) {
            return;
        }
        let required = matches!(piece, Piece::Word | Piece::CjkChar);
        let prefix = piece == Piece::Word && t.chars().nth(1).is_some();
        terms.push(QueryTerm { text: t.to_owned(), required, prefix });
    });
    let meaningful = |q: &QueryTerm| !q.required || !STOPWORDS.contains(&q.text.as_str());
    if terms.iter().any(|q| q.required && meaningful(q)) {
        terms.retain(meaningful);
    }
    terms.truncate(MAX_QUERY_TERMS);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyze(text, &mut |t, _, _, _| out.push(t.to_owned()));
        out
    }

    #[test]
    fn words_split_at_punctuation_and_camel_humps_and_fold_plurals() {
        assert_eq!(tokens("Customer master_data"), ["customer", "master", "data"]);
        assert_eq!(tokens("customerNames, XMLHttp"), ["customer", "name", "customername", "xml", "http", "xmlhttp"]);
        assert_eq!(
            tokens("Orders categories status address bus v2"),
            ["order", "category", "status", "address", "bus", "v2"]
        );
    }

    #[test]
    fn cjk_runs_become_characters_and_pairs() {
        assert_eq!(tokens("客户主数据"), ["客", "户", "客户", "主", "户主", "数", "主数", "据", "数据"]);
        assert_eq!(tokens("客户data"), ["客", "户", "客户", "data"]);
        assert_eq!(tokens("订单、支付"), ["订", "单", "订单", "支", "付", "支付"]);
    }

    #[test]
    fn query_terms_drop_syntax_and_stopwords_but_not_everything() {
        let texts = |q: &str| query_terms(q).into_iter().map(|t| t.text).collect::<Vec<_>>();
        assert_eq!(texts("customer AND ("), ["customer"]);
        assert_eq!(texts("the"), ["the"]);
        assert_eq!(texts("master of data"), ["master", "data"]);
        let cjk = query_terms("客户");
        assert!(cjk[0].required && !cjk[0].prefix && !cjk[2].required, "{cjk:?}");
        assert!(query_terms("cust")[0].prefix);
        assert!(!query_terms("x")[0].prefix);
        assert_eq!(query_terms(&"w ".repeat(40)).len(), 1);
        assert!(query_terms("").is_empty() && query_terms(" * ( ) ").is_empty());
    }
}

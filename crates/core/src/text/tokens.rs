//! Token files: ids given directly instead of text. `hidden --tokens` reads a JSON array of
//! ids or of equally long arrays of ids; `loss --tokens` reads one window of ids per line.

use super::TextError;

/// Ids in windows of equal length: `ids` is [windows, n].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenWindows {
    pub ids: Vec<u32>,
    pub windows: usize,
    pub n: usize,
}

fn bad(message: String) -> TextError {
    TextError::Corpus(message)
}

/// A JSON array of ids (one window) or of arrays of ids (one window each, all as long),
/// from the file named `origin`.
pub fn parse_token_json(text: &str, origin: &str) -> Result<TokenWindows, TextError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("{origin} is not valid JSON: {e}")))?;
    let id = |v: &serde_json::Value| -> Result<u32, TextError> {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                bad(format!(
                    "{origin}: token ids must be integers from 0 to {}, got {v}",
                    u32::MAX
                ))
            })
    };
    let Some(outer) = value.as_array() else {
        return Err(bad(format!("{origin}: expected a JSON array of token ids")));
    };
    if outer.is_empty() {
        return Err(bad(format!("{origin}: no token ids")));
    }
    if outer[0].is_array() {
        let rows: Vec<Vec<u32>> = outer
            .iter()
            .map(|r| {
                r.as_array()
                    .ok_or_else(|| bad(format!("{origin}: mixed arrays and ids")))?
                    .iter()
                    .map(id)
                    .collect()
            })
            .collect::<Result<_, _>>()?;
        let n = rows[0].len();
        if n == 0 || rows.iter().any(|r| r.len() != n) {
            return Err(bad(format!(
                "{origin}: every sequence must have the same, non-zero length"
            )));
        }
        Ok(TokenWindows {
            windows: rows.len(),
            ids: rows.concat(),
            n,
        })
    } else {
        let ids: Vec<u32> = outer.iter().map(id).collect::<Result<_, _>>()?;
        let n = ids.len();
        Ok(TokenWindows { ids, windows: 1, n })
    }
}

/// One window of whitespace-separated ids per line, all lines as long (blank lines are
/// skipped), from the file named `origin`.
pub fn parse_token_lines(text: &str, origin: &str) -> Result<TokenWindows, TextError> {
    let mut ids = Vec::new();
    let mut n = None;
    let mut windows = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Vec<u32> = line
            .split_whitespace()
            .map(|t| {
                t.parse()
                    .map_err(|e| bad(format!("{origin}:{}: '{t}' is not a token id ({e})", i + 1)))
            })
            .collect::<Result<_, _>>()?;
        match n {
            None => n = Some(row.len()),
            Some(n) if n != row.len() => {
                return Err(bad(format!(
                    "{origin}:{}: {} ids where the first window has {n}: every line is one \
                     window of the same length",
                    i + 1,
                    row.len()
                )))
            }
            _ => {}
        }
        ids.extend(row);
        windows += 1;
    }
    let Some(n) = n else {
        return Err(bad(format!("{origin} holds no token ids")));
    };
    Ok(TokenWindows { ids, windows, n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_read_back_and_bad_ones_are_named() {
        let w = parse_token_json("[[1, 2], [3, 4]]", "t.json").unwrap();
        assert_eq!((w.ids, w.windows, w.n), (vec![1, 2, 3, 4], 2, 2));
        let w = parse_token_lines("5 6 7\n\n8 9 10\n", "t.txt").unwrap();
        assert_eq!((w.ids, w.windows, w.n), (vec![5, 6, 7, 8, 9, 10], 2, 3));
        for (text, needle) in [
            ("[[1], 2]", "mixed arrays"),
            ("[[1], [2, 3]]", "same, non-zero length"),
            ("[-1]", "integers from 0"),
            ("[4294967296]", "integers from 0"),
            ("{}", "JSON array"),
        ] {
            let e = parse_token_json(text, "t.json").unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("t.json"), "{text}: {e}");
        }
        let e = parse_token_lines("1 2\n3\n", "t.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.txt:2: 1 ids"), "{e}");
        let e = parse_token_lines("1 x\n", "t.txt").unwrap_err().to_string();
        assert!(e.contains("t.txt:1: 'x' is not a token id"), "{e}");
        assert!(parse_token_lines(" \n", "t.txt").is_err());
    }
}

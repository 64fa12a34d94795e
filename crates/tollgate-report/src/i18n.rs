//! Languages and number formatting. English uses `1,234.56` and `96%`; Turkish, the seed
//! report's language, uses `1.234,56` and `%96`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Tr,
}

impl Lang {
    /// Picks the text for this language.
    pub fn pick<'a>(self, en: &'a str, tr: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Tr => tr,
        }
    }

    fn separators(self) -> (char, char) {
        match self {
            Lang::En => (',', '.'),
            Lang::Tr => ('.', ','),
        }
    }

    /// An integer with thousands separators.
    pub fn int(self, n: u64) -> String {
        group(&n.to_string(), self.separators().0)
    }

    /// A number with a fixed number of decimals.
    pub fn num(self, x: f64, decimals: usize) -> String {
        let (thousands, decimal) = self.separators();
        let s = format!("{:.*}", decimals, x.abs());
        let (int_part, frac) = match s.split_once('.') {
            Some((i, f)) => (i.to_string(), Some(f.to_string())),
            None => (s.clone(), None),
        };
        let mut out = String::new();
        if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
            out.push('-');
        }
        out.push_str(&group(&int_part, thousands));
        if let Some(f) = frac {
            out.push(decimal);
            out.push_str(&f);
        }
        out
    }

    /// A ratio (0..=1) as a percentage: whole numbers unless the value is small.
    pub fn pct(self, ratio: f64) -> String {
        let v = ratio * 100.0;
        let decimals = if v != 0.0 && v.abs() < 10.0 && (v - v.round()).abs() >= 0.05 {
            1
        } else {
            0
        };
        let n = self.num(v, decimals);
        match self {
            Lang::En => format!("{n}%"),
            Lang::Tr => format!("%{n}"),
        }
    }

    /// A ratio or "n/a" when it has no denominator.
    pub fn pct_opt(self, ratio: Option<f64>) -> String {
        ratio.map_or_else(|| self.na().to_string(), |r| self.pct(r))
    }

    pub fn na(self) -> &'static str {
        self.pick("n/a", "yok")
    }

    /// US dollars with enough decimals to show small per-request costs.
    pub fn usd(self, x: f64) -> String {
        // Below the smallest shown digit is zero; float noise (a sum minus the same sum) would
        // otherwise print as "$0.000000" or "-$0.000000".
        if x.abs() < 5e-7 {
            return format!("${}", self.num(0.0, 2));
        }
        let decimals = if x.abs() >= 100.0 {
            2
        } else if x.abs() >= 0.01 {
            4
        } else {
            6
        };
        format!("${}", self.num(x, decimals))
    }

    /// Milliseconds, switching to seconds above 10 s.
    pub fn ms(self, ms: f64) -> String {
        if ms.abs() >= 10_000.0 {
            format!("{} s", self.num(ms / 1000.0, 1))
        } else if ms.abs() >= 100.0 {
            format!("{} ms", self.num(ms, 0))
        } else {
            format!("{} ms", self.num(ms, 1))
        }
    }
}

fn group(digits: &str, sep: char) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_turkish_numbers() {
        assert_eq!(Lang::En.int(1234567), "1,234,567");
        assert_eq!(Lang::Tr.int(1234567), "1.234.567");
        assert_eq!(Lang::En.num(1234.5678, 2), "1,234.57");
        assert_eq!(Lang::Tr.num(1234.5678, 2), "1.234,57");
        assert_eq!(Lang::En.num(-0.001, 2), "0.00");
        assert_eq!(Lang::En.num(-12.5, 1), "-12.5");
        assert_eq!(Lang::En.pct(0.96), "96%");
        assert_eq!(Lang::Tr.pct(0.96), "%96");
        assert_eq!(Lang::Tr.pct(0.0075), "%0,8");
        assert_eq!(Lang::En.pct(0.0), "0%");
        assert_eq!(Lang::Tr.usd(0.0419), "$0,0419");
        assert_eq!(Lang::En.usd(0.000352), "$0.000352");
        assert_eq!(Lang::En.usd(1234.5), "$1,234.50");
        assert_eq!(Lang::Tr.ms(31_000.0), "31,0 s");
        assert_eq!(Lang::En.ms(14.95), "14.9 ms");
        assert_eq!(Lang::En.pct_opt(None), "n/a");
    }
}

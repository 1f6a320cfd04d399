//! Reading the Prometheus text exposition back, and latency percentiles.

use std::time::Duration;

/// One sample of the text exposition: `name{label="value",...} value`.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a `/metrics` body.
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text format (comments skipped; label values unescaped).
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value = value.parse().ok()?;
                let Some((name, labels)) = series.split_once('{') else {
                    return Some(Sample { name: series.to_owned(), labels: Vec::new(), value });
                };
                Some(Sample { name: name.to_owned(), labels: parse_labels(labels.strip_suffix('}')?), value })
            })
            .collect();
        Scrape { samples }
    }

    /// The sum of `name`'s samples whose labels include every `(label, value)` of `matching`.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.select(name, matching).map(|s| s.value).sum()
    }

    /// `sum`, as a count.
    pub fn count(&self, name: &str, matching: &[(&str, &str)]) -> u64 {
        self.sum(name, matching).round() as u64
    }

    /// For each sample of `name` matching `matching`: the values of `labels`, and the sample's value.
    pub fn by(&self, name: &str, labels: &[&str], matching: &[(&str, &str)]) -> Vec<(Vec<String>, f64)> {
        self.select(name, matching)
            .map(|s| {
                let label =
                    |l: &&str| s.labels.iter().find(|(k, _)| k == l).map(|(_, v)| v.clone()).unwrap_or_default();
                (labels.iter().map(label).collect(), s.value)
            })
            .collect()
    }

    /// How many series the scrape holds.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    fn select<'a>(&'a self, name: &'a str, matching: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name && matching.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }
}

/// `a="x",b="y\"z"` into pairs.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((name.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    labels
}

/// The `q`-quantile (0..=1) of sorted `values`, nearest rank.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `1.23 s`, `87 ms` or `0.04 ms`.
pub fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    }
}

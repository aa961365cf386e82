//! The data the page plots: rows of (time, value of each label), kept bounded.
//!
//! Every sample received becomes a row: its time (`t(s)` if the sample carries it, else the
//! web Block's clock) and the value of each label, `NaN` where the sample lacks the label.
//! The whole-test history keeps at most `cap` rows: when full, every other row is dropped
//! and from then on one row in two is kept (then one in four, ...), so an hour-long test
//! costs the same memory as a minute-long one, spread evenly over the test. The live
//! stream sends every row at the push rate, up to [`MAX_ROWS_PER_PUSH`] per push (beyond,
//! evenly spaced rows, the last always kept).

use crabby::Sample;

/// Most rows sent to the browsers in one push (at 30 pushes/s: 6 000 rows/s).
pub const MAX_ROWS_PER_PUSH: usize = 200;

/// One row: time, then one value per label (a row made before a label appeared is shorter).
pub type Row = Vec<f64>;

/// Labels seen so far and the bounded history.
#[derive(Debug)]
pub struct History {
    labels: Vec<String>,
    rows: Vec<Row>,
    cap: usize,
    stride: u64,
    offered: u64,
}

impl History {
    /// An empty history keeping at most `cap` rows (at least 16).
    pub fn new(cap: usize) -> Self {
        History {
            labels: Vec::new(),
            rows: Vec::new(),
            cap: cap.max(16),
            stride: 1,
            offered: 0,
        }
    }

    /// The labels, in the order first seen (column `i + 1` of a row).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The rows kept.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// One row kept in `stride()` (1 until the history first filled up).
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Rows offered since the start (kept or not).
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// Turns a sample into a row (numbers and booleans; text and arrays are not plotted).
    /// `None` if the sample has no number at all.
    pub fn row_of(&mut self, s: &Sample, now: f64) -> Option<Row> {
        let t = s.get_f64("t(s)").unwrap_or(now);
        let mut row: Row = vec![f64::NAN; self.labels.len() + 1];
        row[0] = t;
        let mut any = false;
        for (label, value) in s.iter() {
            let Some(v) = value.as_f64() else { continue };
            let i = match self.labels.iter().position(|l| l == label.as_str()) {
                Some(i) => i,
                None => {
                    self.labels.push(label.as_str().to_owned());
                    row.push(f64::NAN);
                    self.labels.len() - 1
                }
            };
            row[i + 1] = v;
            any = true;
        }
        any.then_some(row)
    }

    /// Adds a row to the whole-test history (kept if it falls on the current stride).
    pub fn offer(&mut self, row: &Row) {
        self.offered += 1;
        if (self.offered - 1) % self.stride != 0 {
            return;
        }
        if self.rows.len() >= self.cap {
            let mut i = 0;
            self.rows.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
            if (self.offered - 1) % self.stride != 0 {
                return;
            }
        }
        self.rows.push(row.clone());
    }
}

/// At most `max` rows of `rows`, evenly spaced, the last one always kept.
pub fn thin(rows: Vec<Row>, max: usize) -> Vec<Row> {
    let n = rows.len();
    if n <= max || max == 0 {
        return rows;
    }
    let step = n as f64 / max as f64;
    let mut keep: Vec<usize> = (0..max).map(|k| (k as f64 * step) as usize).collect();
    *keep.last_mut().unwrap() = n - 1;
    let mut out = Vec::with_capacity(max);
    let mut next = keep.iter().peekable();
    for (i, r) in rows.into_iter().enumerate() {
        if next.peek() == Some(&&i) {
            out.push(r);
            next.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_use_t_and_new_labels_extend_them() {
        let mut h = History::new(100);
        let r = h
            .row_of(&Sample::new().with("t(s)", 1.5).with("F(N)", 2.0), 9.0)
            .unwrap();
        assert_eq!(r, vec![1.5, 1.5, 2.0]);
        let r = h.row_of(&Sample::new().with("x(mm)", 3.0), 9.0).unwrap();
        assert_eq!(r[0], 9.0);
        assert!(r[1].is_nan() && r[2].is_nan());
        assert_eq!(r[3], 3.0);
        assert_eq!(h.labels(), ["t(s)", "F(N)", "x(mm)"]);
        assert!(h.row_of(&Sample::new().with("name", "text"), 1.0).is_none());
    }

    #[test]
    fn history_is_bounded_and_evenly_decimated() {
        let mut h = History::new(100);
        for i in 0..100_000u32 {
            h.offer(&vec![i as f64]);
        }
        assert!(h.rows().len() <= 100, "{}", h.rows().len());
        assert!(h.rows().len() >= 50, "{}", h.rows().len());
        let s = h.stride() as f64;
        for w in h.rows().windows(2) {
            assert_eq!(w[1][0] - w[0][0], s, "rows evenly spaced");
        }
        assert_eq!(h.rows()[0][0], 0.0);
        assert!(h.rows().last().unwrap()[0] > 100_000.0 - 2.0 * s);
    }

    #[test]
    fn thin_keeps_the_last_row_and_the_count() {
        let rows: Vec<Row> = (0..1000).map(|i| vec![i as f64]).collect();
        let t = thin(rows.clone(), 200);
        assert_eq!(t.len(), 200);
        assert_eq!(t.last().unwrap()[0], 999.0);
        assert_eq!(t[0][0], 0.0);
        assert_eq!(thin(rows[..10].to_vec(), 200).len(), 10);
    }
}

//! The `t,value` tables of custom paths: parsing, validation, interpolation.

/// Parses a two-column table. Errors name the line (1-based) and say what is wrong.
pub(crate) fn parse_table(text: &str, delimiter: char) -> Result<Vec<(f64, f64)>, String> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    let shown = match delimiter {
        '\t' => "a tab".to_owned(),
        ' ' => "whitespace".to_owned(),
        c => format!("'{c}'"),
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = if delimiter == ' ' {
            line.split_whitespace().collect()
        } else {
            line.split(delimiter).map(str::trim).collect()
        };
        if fields.len() != 2 {
            return Err(format!(
                "line {n}: expected two numbers (time, value) separated by {shown}, got {} field(s) in \"{line}\"",
                fields.len()
            ));
        }
        let num = |s: &str, what: &str| -> Result<f64, String> {
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("line {n}: the {what} '{s}' is not a finite number")),
            }
        };
        let t = num(fields[0], "time")?;
        let v = num(fields[1], "value")?;
        if let Some(&(prev, _)) = points.last() {
            if t <= prev {
                return Err(format!(
                    "line {n}: times must increase strictly ({t} comes after {prev})"
                ));
            }
        }
        points.push((t, v));
    }
    if points.is_empty() {
        return Err("has no data line (expected lines such as \"0.5,1.2\")".to_owned());
    }
    Ok(points)
}

/// Checks points given in the program.
pub(crate) fn validate(points: &[(f64, f64)]) -> Result<(), String> {
    if points.is_empty() {
        return Err("no point given".to_owned());
    }
    for (i, w) in points.iter().enumerate() {
        if !w.0.is_finite() || !w.1.is_finite() {
            return Err(format!("point {i} ({}, {}) is not finite", w.0, w.1));
        }
        if i > 0 && w.0 <= points[i - 1].0 {
            return Err(format!(
                "point {i}: times must increase strictly ({} comes after {})",
                w.0,
                points[i - 1].0
            ));
        }
    }
    Ok(())
}

/// Linear interpolation, held at the ends (as `numpy.interp`).
pub(crate) fn interpolate(points: &[(f64, f64)], t: f64) -> f64 {
    let Some(first) = points.first() else {
        return 0.0;
    };
    if t <= first.0 {
        return first.1;
    }
    // Index of the first point with time > t.
    let i = points.partition_point(|p| p.0 <= t);
    if i >= points.len() {
        return points[points.len() - 1].1;
    }
    let (t0, v0) = points[i - 1];
    let (t1, v1) = points[i];
    v0 + (v1 - v0) * (t - t0) / (t1 - t0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_comments_blank_lines_and_delimiters() {
        let p = parse_table("# t,v\n0,0\n\n1, 2\n 3 ,2.5\n", ',').unwrap();
        assert_eq!(p, [(0.0, 0.0), (1.0, 2.0), (3.0, 2.5)]);
        let p = parse_table("0;1\n2;3", ';').unwrap();
        assert_eq!(p, [(0.0, 1.0), (2.0, 3.0)]);
        let p = parse_table("0  1\n2\t3", ' ').unwrap();
        assert_eq!(p, [(0.0, 1.0), (2.0, 3.0)]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_table("0,0\n1,2,3\n", ',').unwrap_err();
        assert!(e.contains("line 2") && e.contains("3 field(s)"), "{e}");
        let e = parse_table("0,0\n\n1,x\n", ',').unwrap_err();
        assert!(e.contains("line 3") && e.contains("'x'"), "{e}");
        let e = parse_table("0,0\n1,1\n1,2\n", ',').unwrap_err();
        assert!(e.contains("line 3") && e.contains("increase"), "{e}");
        let e = parse_table("0;0\n", ',').unwrap_err();
        assert!(e.contains("line 1") && e.contains("','"), "{e}");
        let e = parse_table("# only a comment\n", ',').unwrap_err();
        assert!(e.contains("no data line"), "{e}");
        let e = parse_table("0,inf\n", ',').unwrap_err();
        assert!(e.contains("value 'inf'"), "{e}");
    }

    #[test]
    fn interpolates_linearly_and_holds_the_ends() {
        let p = [(1.0, 10.0), (2.0, 20.0), (4.0, 0.0)];
        assert_eq!(interpolate(&p, 0.0), 10.0);
        assert_eq!(interpolate(&p, 1.0), 10.0);
        assert_eq!(interpolate(&p, 1.5), 15.0);
        assert_eq!(interpolate(&p, 2.0), 20.0);
        assert_eq!(interpolate(&p, 3.0), 10.0);
        assert_eq!(interpolate(&p, 5.0), 0.0);
        assert!(validate(&p).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&[(1.0, 0.0), (1.0, 1.0)]).is_err());
        assert!(validate(&[(f64::NAN, 0.0)]).is_err());
    }
}

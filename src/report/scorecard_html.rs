//! The scorecard as a student hands it in: `scorecard.html`, one
//! self-contained page (inline CSS, no scripts, nothing fetched) beside
//! `scorecard.md` and `scorecard.json`, in English or the course's Korean.
//! Each checkpoint's row links, relative to the page, to the reports behind
//! it that exist: its experiments' `report.html` (availability with the
//! fault shaded, the lag curve) or its contract cases' verifier transcripts
//! and reports.

use std::fmt::Write;
use std::path::Path;

use super::util::escape;
use crate::check::{CASES_DIR, Checkpoints, Scorecard, Scored, Verdict, case_stem};

/// A link from a checkpoint's row: its text and its address relative to
/// the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What it points at (`delivery-outage`, `item-rename (transcript)`).
    pub label: String,
    /// Relative to the scorecard's folder, `/`-separated, unencoded.
    pub href: String,
}

/// The page's own words in one language.
struct Words {
    lang: &'static str,
    title: &'static str,
    system: &'static str,
    started: &'static str,
    elapsed: &'static str,
    counts: &'static str,
    result: &'static str,
    passed: &'static str,
    failed: &'static str,
    number: &'static str,
    checkpoint: &'static str,
    verdict: &'static str,
    evidence: &'static str,
    reports: &'static str,
    none: &'static str,
    transcript: &'static str,
    also: &'static str,
}

const EN: Words = Words {
    lang: "en",
    title: "checkpoint scorecard",
    system: "System",
    started: "Started",
    elapsed: "Elapsed",
    counts: "Checkpoints",
    result: "Result",
    passed: "PASSED",
    failed: "FAILED",
    number: "#",
    checkpoint: "Checkpoint",
    verdict: "Verdict",
    evidence: "Evidence",
    reports: "Reports",
    none: "none",
    transcript: "verifier transcript",
    also: "The same scorecard as data",
};

const KO: Words = Words {
    lang: "ko",
    title: "체크포인트 채점표",
    system: "시스템",
    started: "시작 시각",
    elapsed: "소요 시간",
    counts: "체크포인트",
    result: "결과",
    passed: "통과",
    failed: "불합격",
    number: "번호",
    checkpoint: "체크포인트",
    verdict: "판정",
    evidence: "증거",
    reports: "보고서",
    none: "없음",
    transcript: "검증 기록",
    also: "같은 채점표의 데이터 형식",
};

/// A verdict's class, mark and word: the mark and the word carry it
/// without colour.
fn verdict_cell(verdict: Verdict, korean: bool) -> (&'static str, &'static str, &'static str) {
    let (class, mark) = match verdict {
        Verdict::Pass => ("pass", "✔"),
        Verdict::Fail => ("fail", "✘"),
        Verdict::Inconclusive => ("inconclusive", "?"),
        Verdict::NotYet => ("notyet", "…"),
        Verdict::NotApplicable => ("na", "–"),
    };
    let word = match (verdict, korean) {
        (v, false) => v.as_str(),
        (Verdict::Pass, true) => "통과",
        (Verdict::Fail, true) => "실패",
        (Verdict::Inconclusive, true) => "판단 불가",
        (Verdict::NotYet, true) => "자동화 예정",
        (Verdict::NotApplicable, true) => "해당 없음",
    };
    (class, mark, word)
}

const STYLE: &str = "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.5em}dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:bold}dd{margin:0}\
table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.id{text-align:right}td.verdict{white-space:nowrap;font-weight:bold}\
.pass{background:#e3f4e8;color:#17663a}.fail{background:#fbe3e1;color:#a21d12}.inconclusive{background:#fff1d6;color:#8a4b00}\
.notyet,.na{background:#f0f0f0;color:#555;font-weight:normal}.result{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:bold}\
.evidence{overflow-wrap:anywhere}ul.links{margin:0;padding-left:1.1em}</style>";

/// `card` as one HTML page; `links[i]` are the reports of
/// `card.checkpoints[i]`.
pub fn scorecard_html(card: &Scorecard, links: &[Vec<Link>], korean: bool) -> String {
    let w = if korean { &KO } else { &EN };
    let mut o = String::new();
    let title = format!("{} {}", card.system, w.title);
    let _ = writeln!(o, "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title>{STYLE}</head><body>", w.lang, escape(&title));
    let _ = writeln!(o, "<h1>{}</h1>", escape(&title));
    let (class, mark, word) = if card.passed { ("pass", "✔", w.passed) } else { ("fail", "✘", w.failed) };
    let _ = writeln!(o, "<dl><dt>{}</dt><dd>{}</dd>", w.system, escape(&card.system));
    let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", w.started, escape(&card.started_at));
    let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", w.elapsed, elapsed(card.elapsed_seconds, korean));
    let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", w.counts, counts(card, korean));
    let _ = writeln!(o, "<dt>{}</dt><dd><span class=\"result {class}\" id=\"result\">{mark} {word}</span></dd></dl>", w.result);
    let _ = writeln!(o, "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>", w.number, w.checkpoint, w.verdict, w.evidence, w.reports);
    for (i, s) in card.checkpoints.iter().enumerate() {
        let (class, mark, word) = verdict_cell(s.verdict, korean);
        let _ = write!(
            o,
            "<tr id=\"checkpoint-{}\"><td class=\"id\">{}</td><td>{}</td><td class=\"verdict {class}\">{mark} {word}</td><td class=\"evidence\">{}</td><td>",
            s.id,
            s.id,
            escape(&s.name),
            escape(&s.evidence)
        );
        match links.get(i).map(Vec::as_slice).unwrap_or_default() {
            [] => o.push_str(w.none),
            links => {
                o.push_str("<ul class=\"links\">");
                for link in links {
                    let label = link.label.replace("(transcript)", &format!("({})", w.transcript));
                    let _ = write!(o, "<li><a href=\"{}\">{}</a></li>", escape(&href(&link.href)), escape(&label));
                }
                o.push_str("</ul>");
            }
        }
        o.push_str("</td></tr>\n");
    }
    o.push_str("</table>\n");
    let _ = writeln!(o, "<p>{}: <a href=\"scorecard.json\">scorecard.json</a> · <a href=\"scorecard.md\">scorecard.md</a></p>", w.also);
    o.push_str("</body></html>\n");
    o
}

/// The reports behind each checkpoint of `checkpoints` that exist under
/// `dir`: each experiment's `NAME/report.html`; for a contract, each case's
/// files as `check` writes them (`contract-verification/PROVIDER[-VARIANT]`
/// `.txt`, `.json`, `.junit.xml`).
pub fn scorecard_links(card: &Scorecard, checkpoints: &Checkpoints, dir: &Path) -> Vec<Vec<Link>> {
    let existing = |label: String, href: String| dir.join(&href).is_file().then_some(Link { label, href });
    card.checkpoints
        .iter()
        .map(|score| {
            let Some(checkpoint) = checkpoints.list.iter().find(|c| c.id == score.id) else { return vec![] };
            match &checkpoint.scored {
                Scored::Contract(contract) => contract
                    .cases
                    .iter()
                    .flat_map(|case| {
                        let stem = case_stem(&contract.provider, case.variant.as_deref());
                        let who = case.variant.clone().unwrap_or_else(|| contract.provider.clone());
                        [("txt", "(transcript)"), ("json", "JSON"), ("junit.xml", "JUnit")]
                            .into_iter()
                            .filter_map(move |(ext, kind)| existing(format!("{who} {kind}"), format!("{CASES_DIR}/{stem}.{ext}")))
                            .collect::<Vec<_>>()
                    })
                    .collect(),
                scored => scored.experiments().into_iter().filter_map(|r| existing(r.name.clone(), format!("{}/report.html", r.name))).collect(),
            }
        })
        .collect()
}

/// Writes `scorecard.html` into `dir`, linking the reports there.
pub fn write_scorecard_html(dir: &Path, card: &Scorecard, checkpoints: &Checkpoints, korean: bool) -> anyhow::Result<()> {
    let links = scorecard_links(card, checkpoints, dir);
    std::fs::write(dir.join("scorecard.html"), scorecard_html(card, &links, korean))?;
    Ok(())
}

/// A relative path as a URL path: every byte but unreserved ones and `/`
/// percent-encoded (a `#`, `?` or space in a name stays part of the path).
fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn elapsed(seconds: f64, korean: bool) -> String {
    let total = seconds.round() as u64;
    match (total / 60, total % 60, korean) {
        (0, s, false) => format!("{s} s"),
        (m, s, false) => format!("{m} min {s} s"),
        (0, s, true) => format!("{s}초"),
        (m, s, true) => format!("{m}분 {s}초"),
    }
}

/// Every verdict's count, zeros included, in the page's language.
fn counts(card: &Scorecard, korean: bool) -> String {
    let all = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive, Verdict::NotYet, Verdict::NotApplicable];
    let parts: Vec<String> = all
        .iter()
        .map(|v| {
            let (_, _, word) = verdict_cell(*v, korean);
            if korean { format!("{word} {}", card.count(*v)) } else { format!("{} {word}", card.count(*v)) }
        })
        .collect();
    format!("{} — {}", card.checkpoints.len(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Score;

    const HOSTILE: &str = "p99 <script>alert(\"x\")</script> & 'more' > 5";

    fn card() -> Scorecard {
        let verdicts = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive, Verdict::NotYet, Verdict::NotApplicable];
        let checkpoints = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| Score { id: i as u8 + 1, name: format!("체크 <{i}>"), verdict: *v, evidence: format!("{HOSTILE} #{i}"), report: None })
            .collect();
        Scorecard { schema_version: 2, system: "shop&<co>".into(), started_at: "2026-12-02T10:00:00.000Z".into(), elapsed_seconds: 85.4, passed: false, checkpoints }
    }

    fn links() -> Vec<Vec<Link>> {
        vec![
            vec![Link { label: "delivery-outage".into(), href: "delivery-outage/report.html".into() }],
            vec![Link { label: "item-rename (transcript)".into(), href: "contract-verification/shop.product-item rename#1.txt".into() }],
        ]
    }

    #[test]
    fn every_verdict_is_in_words_and_every_text_is_escaped() {
        let page = scorecard_html(&card(), &links(), false);
        assert!(!page.contains("<script>") && !page.contains("\"x\""), "evidence is escaped: {page}");
        assert_eq!(page.matches("p99 &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;more&apos; &gt; 5").count(), 5);
        assert!(page.contains("<title>shop&amp;&lt;co&gt; checkpoint scorecard</title>") && page.contains("체크 &lt;0&gt;"));
        for word in ["✔ pass", "✘ fail", "? inconclusive", "… not yet", "– not applicable"] {
            assert!(page.contains(word), "{word} in words, not by colour alone");
        }
        assert!(page.contains("1 min 25 s") && page.contains("5 — 1 pass, 1 fail, 1 inconclusive, 1 not yet, 1 not applicable"), "{page}");
        assert!(page.contains("id=\"result\">✘ FAILED"));
        assert!(!page.contains("http") && !page.contains("<link") && !page.contains("src="), "nothing is fetched");
    }

    #[test]
    fn links_are_relative_and_encoded() {
        let page = scorecard_html(&card(), &links(), false);
        assert!(page.contains("<a href=\"delivery-outage/report.html\">delivery-outage</a>"), "{page}");
        assert!(page.contains("<a href=\"contract-verification/shop.product-item%20rename%231.txt\">item-rename (verifier transcript)</a>"), "{page}");
        assert_eq!(page.matches("<td>none</td>").count(), 3, "rows without reports say so");
    }

    #[test]
    fn korean_translates_the_page_too() {
        let page = scorecard_html(&card(), &links(), true);
        assert!(page.contains("<html lang=\"ko\">") && page.contains("<th>판정</th>") && page.contains("<th>증거</th>") && page.contains("<th>보고서</th>"));
        for word in ["✔ 통과", "✘ 실패", "? 판단 불가", "… 자동화 예정", "– 해당 없음", "1분 25초", "item-rename (검증 기록)", "✘ 불합격"] {
            assert!(page.contains(word), "{word}: {page}");
        }
        assert!(!page.contains(">Verdict<") && !page.contains(">none<"));
    }

    #[test]
    fn only_reports_that_exist_are_linked() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "checkpoints:
  - { id: 1, en: Saga, ko: Saga, experiment: saga, phases: [before] }
  - { id: 2, en: Deploy, ko: 배포, contrast: { with: a, without: b, route: POST /orders }, phases: [during] }
  - id: 3
    en: Contract
    ko: 계약
    contract: { provider: shop.product, cases: [{ expect: pass }, { variant: rename, expect: fail }] }
  - { id: 4, en: Later, ko: 나중, not_yet: soon }
";
        let list = crate::check::checkpoint::parse(&crate::systems::SystemFile { name: "checkpoints.yaml".into(), origin: "checkpoints.yaml".into(), text: yaml.into() }).unwrap();
        let checkpoints = Checkpoints { list, experiments: vec![] };
        for file in ["saga/report.html", "b/report.html", "contract-verification/shop.product.txt", "contract-verification/shop.product.json", "contract-verification/shop.product-rename.txt"] {
            std::fs::create_dir_all(dir.path().join(file).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        let mut card = card();
        card.checkpoints.truncate(4);
        let hrefs: Vec<Vec<String>> = scorecard_links(&card, &checkpoints, dir.path()).into_iter().map(|l| l.into_iter().map(|l| l.href).collect()).collect();
        assert_eq!(
            hrefs,
            [
                vec!["saga/report.html".to_string()],
                vec!["b/report.html".into()],
                vec!["contract-verification/shop.product.txt".into(), "contract-verification/shop.product.json".into(), "contract-verification/shop.product-rename.txt".into()],
                vec![],
            ]
        );
    }
}

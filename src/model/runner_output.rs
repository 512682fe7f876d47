//! What the preview runner says about its dev server, as the controller may keep it: the body
//! of the runner's readiness answer (`GET /__preview/ready`, which Fly reports as the `dev`
//! check's output): a first line `<phase>: <one sentence>`, then the last relevant output
//! lines. The runner redacts secrets; the text still comes from the user's project, so it is
//! treated as hostile: bounded, control and invisible characters removed.

use crate::model::state::label_enum;
use crate::model::validate::is_format_char;

/// Most bytes of runner output kept (the runner sends at most 1,024).
pub const MAX_OUTPUT_BYTES: usize = 1024;
/// Most bytes of the runner's one sentence used in a message.
pub const MAX_SENTENCE_BYTES: usize = 240;

label_enum! {
    /// The runner's phase (deploy/runner: `/__preview/status`).
    Phase {
        Cloning = "cloning",
        Installing = "installing",
        Starting = "starting",
        Serving = "serving",
        Restarting = "restarting",
        Crashloop = "crashloop",
        CloneFailed = "clone_failed",
        InstallFailed = "install_failed",
        NoScript = "no_script",
        Invalid = "invalid",
    }
}

/// The runner's readiness body, cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerReport {
    /// The phase named on the first line, when it is one the runner has.
    pub phase: Option<Phase>,
    /// The first line's sentence (after `<phase>: `), at most [`MAX_SENTENCE_BYTES`].
    pub sentence: Option<String>,
    /// The whole cleaned text, at most [`MAX_OUTPUT_BYTES`].
    pub text: String,
}

/// Longest prefix of `s` of at most `max` bytes ending on a character boundary.
pub fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let cut = (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    &s[..cut]
}

/// Newlines kept (CR LF and CR become LF), tabs become spaces, every other control and
/// invisible formatting character dropped, trailing blank lines removed, then clipped.
pub fn clean(raw: &str, max: usize) -> String {
    let text = raw.replace("\r\n", "\n").replace('\r', "\n");
    let kept: String = text
        .chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            '\t' => Some(' '),
            c if c.is_control() || is_format_char(c) => None,
            c => Some(c),
        })
        .collect();
    clip_bytes(kept.trim_end(), max).to_owned()
}

impl RunnerReport {
    /// Reads a check output; `None` when nothing is left after cleaning.
    pub fn parse(raw: &str) -> Option<Self> {
        let text = clean(raw, MAX_OUTPUT_BYTES);
        if text.trim().is_empty() {
            return None;
        }
        let first = text.lines().next().unwrap_or_default();
        let (phase, sentence) = match first.split_once(": ") {
            Some((p, s)) => match p.trim().parse::<Phase>() {
                Ok(phase) => (Some(phase), Some(s.trim())),
                Err(_) => (None, None),
            },
            None => (None, None),
        };
        let sentence = sentence
            .filter(|s| !s.is_empty())
            .map(|s| clip_bytes(s, MAX_SENTENCE_BYTES).to_owned());
        Some(Self { phase, sentence, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_phase_sentence_and_lines() {
        let raw =
            "install_failed: the package @acme/ui needs NPM_TOKEN\r\nnpm ERR! 404\t@acme/ui\n\n";
        let r = RunnerReport::parse(raw).unwrap();
        assert_eq!(r.phase, Some(Phase::InstallFailed));
        assert_eq!(r.sentence.as_deref(), Some("the package @acme/ui needs NPM_TOKEN"));
        assert_eq!(
            r.text,
            "install_failed: the package @acme/ui needs NPM_TOKEN\nnpm ERR! 404 @acme/ui"
        );
    }

    #[test]
    fn hostile_text_is_bounded_and_cleaned() {
        let raw = format!("crashloop: boom\u{1b}[31m\u{202E}x\u{0}\n{}", "é".repeat(2000));
        let r = RunnerReport::parse(&raw).unwrap();
        assert!(r.text.len() <= MAX_OUTPUT_BYTES);
        assert!(!r.text.chars().any(|c| (c.is_control() && c != '\n') || is_format_char(c)));
        assert_eq!(r.sentence.as_deref(), Some("boom[31mx"));
        let long = format!("crashloop: {}", "a".repeat(900));
        assert_eq!(RunnerReport::parse(&long).unwrap().sentence.unwrap().len(), MAX_SENTENCE_BYTES);
    }

    #[test]
    fn unknown_first_lines_have_no_phase() {
        let r = RunnerReport::parse("connection refused").unwrap();
        assert_eq!((r.phase, r.sentence), (None, None));
        assert_eq!(RunnerReport::parse(" \n\u{7}\n"), None);
        assert_eq!(RunnerReport::parse("weird: thing").unwrap().phase, None);
    }
}

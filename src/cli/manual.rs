//! `p2pmon man` and `p2pmon completions`: the man page and the shell
//! completions, rendered at run time from the same clap definitions as
//! `--help`, so they can never drift from the options the binary has. A
//! subcommand rather than a build script: packagers run the installed binary
//! (`p2pmon man --out /usr/local/share/man/man1`), and `cargo install` users
//! get both with no extra step.
//!
//! clap_mangen writes the NAME, SYNOPSIS, DESCRIPTION, OPTIONS and
//! SUBCOMMANDS sections; what clap does not know (signals, files, exit
//! status) is appended here as plain roff.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Error;
use crate::cli::Cli;

/// The sections clap cannot derive, in roff.
const EXTRA_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGINT\fR, \fBSIGTERM\fR
Send a leave to every peer that speaks protocol v1 and exit 0 in well under a second.
.TP
\fBSIGHUP\fR
Re\-read the \fB\-\-config\fR file and the key file. Peers added to the file start
getting statuses, removed peers get a leave and nothing more (with membership
learning on, they stay members until they leave or are forgotten); connections
to the other peers are kept. Flags given on the command line still win (with
\fB\-\-peers\fR on the command line, the file's list is not applied). Settings
that cannot change at run time (listen address, port, HTTP address, ...) are
reported as needing a restart. A file that fails to load changes nothing: the
error is logged and the node runs on. One line on stderr tells what changed.
.SH FILES
.TP
\fI/etc/p2pmon/config.toml\fR
Config file of the systemd unit (\fB\-\-config\fR); every key is documented in
config.example.toml.
.TP
\fI/etc/p2pmon/key\fR
Cluster key file (\fB\-\-key\-file\fR), made by \fBp2pmon keygen \-\-out\fR; mode 0600,
owned by the user that runs p2pmon.
.SH ENVIRONMENT
.TP
\fBP2PMON_KEY_FILE\fR
Cluster key file, when \fB\-\-key\-file\fR is not given.
.TP
\fBRUST_LOG\fR
Log filter for stderr (e.g. info, debug), over \fB\-v\fR/\fB\-q\fR.
.SH EXIT STATUS
.TP
0
Clean stop (SIGINT or SIGTERM).
.TP
1
Failure at run time (for example the port is in use).
.TP
2
Bad command line or config file.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBsystemd.exec\fR(5)
"#;

/// The command tree as clap builds it (help subcommand off: it has no page).
fn command() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// Renders the main page: clap's sections, then ours.
fn render_main(out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    out.write_all(EXTRA_SECTIONS.as_bytes())?;
    man.render_version_section(out)
}

/// The main man page, as roff.
pub fn page() -> Vec<u8> {
    let mut page = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = render_main(&mut page);
    page
}

/// `p2pmon man`: the page on stdout, or with `out` p2pmon.1 plus one page
/// per visible subcommand written into that directory.
pub fn man(out: Option<&Path>) -> Result<(), Error> {
    let Some(dir) = out else {
        return std::io::stdout()
            .write_all(&page())
            .map_err(|e| Error::Runtime(format!("cannot write the man page: {e}")));
    };
    let fail = |e: std::io::Error| {
        Error::Runtime(format!(
            "cannot write man pages to {}: {}",
            dir.display(),
            crate::sys::describe_io_error(&e)
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let main = dir.join("p2pmon.1");
    std::fs::write(&main, page()).map_err(fail)?;
    let mut written = vec![main];
    for sub in command().get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = clap_mangen::Man::new(sub.clone())
            .generate_to(dir)
            .map_err(fail)?;
        written.push(path);
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `p2pmon completions SHELL`: the completion script on stdout.
pub fn completions(shell: Shell) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "p2pmon", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Error::Runtime(format!("cannot write the completions: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_lists_the_options_and_signals() {
        let page = String::from_utf8_lossy(&page()).into_owned();
        assert!(page.contains(".TH p2pmon 1"), "{page}");
        // roff escapes dashes: `\-\-peers`.
        for option in [
            "peers",
            "port",
            "listen",
            "interval",
            "offline\\-after",
            "config",
            "key\\-file",
            "http",
            "on\\-event",
        ] {
            assert!(
                page.contains(&format!("\\-\\-{option}")),
                "no --{option}:\n{page}"
            );
        }
        for section in ["SIGNALS", "SIGHUP", "EXIT STATUS", "FILES", "keygen"] {
            assert!(page.contains(section), "no {section}");
        }
        assert!(!page.contains("loadgen"), "hidden subcommands stay hidden");
    }

    #[test]
    fn bash_completions_know_the_options() {
        let mut script = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), "p2pmon", &mut script);
        let script = String::from_utf8_lossy(&script);
        assert!(script.contains("--peers"));
        assert!(script.contains("--key-file"));
        assert!(script.contains("keygen"));
    }
}

//! The manual pages, generated from what the binary itself knows, so they cannot drift:
//! `mqtt-broker(8)` from the command-line definitions (clap_mangen) and `mqtt-broker.conf(5)`
//! from the mosquitto.conf option table the configuration reader is checked against.

use std::path::Path;

use clap::CommandFactory as _;
use mqtt_tokio::config::{OPTIONS, Support};

use crate::Cli;

/// Writes `mqtt-broker.8` and `mqtt-broker.conf.5` into `dir`.
pub fn write(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .section("8")
        .render(&mut page)
        .map_err(|e| e.to_string())?;
    let save = |name: &str, text: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    save("mqtt-broker.8", &page)?;
    save("mqtt-broker.conf.5", conf_page().as_bytes())
}

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e");
    match text.chars().next() {
        Some('.' | '\'') => format!("\\&{text}"),
        _ => text,
    }
}

/// `mqtt-broker.conf(5)`: the file's syntax and one entry per mosquitto.conf option.
fn conf_page() -> String {
    let mut page = String::from(
        ".TH MQTT-BROKER.CONF 5 \"\" \"mqtt-broker\" \"File Formats\"\n\
         .SH NAME\nmqtt-broker.conf \\- configuration of mqtt-broker\n\
         .SH SYNOPSIS\n/etc/mqtt-broker/mqtt-broker.conf\n\
         .SH DESCRIPTION\n\
         mqtt-broker reads mosquitto's configuration format, described in \\fBmosquitto.conf\\fR(5): \
         one option and its value per line, \\fB#\\fR for comments, \\fBinclude_dir\\fR for \
         further files. Every option of mosquitto 2.0 is either honoured with mosquitto's \
         meaning, refused (the broker does not start, naming the file, the line and why), or \
         ignored with a warning where nothing a client or an operator could notice depends on \
         it. An unknown option is an error. A file ending in \\fI.toml\\fR is read as the \
         broker's own TOML format instead (see CONFIG.md in the documentation).\n\
         .PP\n\\fBmqtt-broker check-config\\fR \\fIFILE\\fR shows what is done with each line of \
         a file, without starting the broker.\n\
         .SH OPTIONS\n",
    );
    for (name, support) in OPTIONS {
        let name = if name.ends_with("opt_") {
            format!("{name}*")
        } else {
            (*name).to_owned()
        };
        let (treatment, note) = match support {
            Support::Honoured("") => ("honoured", "as mosquitto"),
            Support::Honoured(note) => ("honoured", *note),
            Support::Refused(note) => ("refused", *note),
            Support::Ignored(note) => ("ignored (warning)", *note),
        };
        let note = note.replace('`', "");
        page.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}: {}\n",
            roff(&name),
            treatment,
            roff(&note)
        ));
    }
    page.push_str(
        ".SH FILES\n/etc/mqtt-broker/mqtt-broker.conf, /etc/mqtt-broker/conf.d/*.conf, \
         /var/lib/mqtt-broker/mqtt-broker.redb\n\
         .SH SEE ALSO\n\\fBmqtt-broker\\fR(8), \\fBmosquitto.conf\\fR(5)\n",
    );
    page
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_option_has_an_entry_and_roff_text_is_escaped() {
        let page = super::conf_page();
        assert_eq!(
            page.matches(".TP\n").count(),
            mqtt_tokio::config::OPTIONS.len()
        );
        assert!(page.contains(".TP\n\\fBpsk_file\\fR\nrefused: TLS-PSK is not supported"));
        assert_eq!(super::roff(".x"), "\\&.x");
        assert_eq!(super::roff("a\\b"), "a\\eb");
    }
}

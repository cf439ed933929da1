//! `chatgate demo`: the emulated vendors and the gateway on loopback, with curl
//! commands that work as printed. [`config_toml`] is also the config integration
//! tests start from, so the demo is exercised by the test suite.

use std::io;
use std::net::SocketAddr;

use chatgate_emulator::{self as emulator, EmulatorServer, Vendor};

use crate::config;
use crate::server;

/// A client key allowed every bot (the demo's; not a secret).
pub const DEMO_KEY: &str = "demo-client-key-0123456789";
/// A client key allowed only the `support` bot, to show 403.
pub const SCOPED_KEY: &str = "support-only-key-0123456789";

/// A complete config for the gateway against a running emulator: one bot per
/// vendor (`support` on Chatbase, `sales` on Chatzuri, `sales-legacy` on Chatzuri's
/// legacy dialect, `helpdesk` on Chatling, `support-v2` on Chatbase API v2),
/// `migrating` reading Chatbase and
/// Chatling together, and two clients.
pub fn config_toml(emu: &EmulatorServer, bind: SocketAddr) -> String {
    format!(
        r#"
[server]
bind = "{bind}"
workers = 2

[providers.chatbase]
base_url = "{chatbase}"
api_key = "{chatbase_key}"

[providers.chatzuri]
base_url = "{chatzuri}"
api_key = "{chatzuri_key}"

[providers.chatzuri-legacy]
kind = "chatzuri"
dialect = "legacy"
base_url = "{chatzuri}"
api_key = "{chatzuri_key}"

[providers.chatling]
base_url = "{chatling}"
api_key = "{chatling_key}"

[providers.chatbase-v2]
kind = "chatbase_v2"
base_url = "{chatbase_v2}"
api_key = "{chatbase_v2_key}"

[bots.support]
provider = "chatbase"
chatbot_id = "{chatbase_bot}"

[bots.sales]
provider = "chatzuri"
chatbot_id = "{chatzuri_bot}"

[bots.sales-legacy]
provider = "chatzuri-legacy"
chatbot_id = "{chatzuri_bot}"

[bots.helpdesk]
provider = "chatling"
chatbot_id = "{chatling_bot}"

# The same Chatbase agent read through Chatbase's API v2: a bot moves from v1 to
# v2 by changing `provider` (and nothing else a caller sees).
[bots.support-v2]
provider = "chatbase-v2"
chatbot_id = "{chatbase_v2_bot}"

# A bot mid-migration from Chatbase to Chatling: both histories, merged.
[[bots.migrating.backends]]
provider = "chatbase"
chatbot_id = "{chatbase_bot}"

[[bots.migrating.backends]]
provider = "chatling"
chatbot_id = "{chatling_bot}"

[clients.demo]
key = "{DEMO_KEY}"
bots = ["*"]
requests_per_minute = 600
burst = 20

[clients.support-only]
key = "{SCOPED_KEY}"
bots = ["support"]
requests_per_minute = 60
burst = 5
"#,
        chatbase = emu.base_url(Vendor::Chatbase),
        chatzuri = emu.base_url(Vendor::Chatzuri),
        chatling = emu.base_url(Vendor::Chatling),
        chatbase_v2 = emu.base_url(Vendor::ChatbaseV2),
        chatbase_v2_key = emulator::CHATBASE_V2_KEY,
        chatbase_v2_bot = emulator::CHATBASE_V2_BOT,
        chatbase_key = emulator::CHATBASE_KEY,
        chatzuri_key = emulator::CHATZURI_KEY,
        chatling_key = emulator::CHATLING_KEY,
        chatbase_bot = emulator::CHATBASE_BOT,
        chatzuri_bot = emulator::CHATZURI_BOT,
        chatling_bot = emulator::CHATLING_BOT,
    )
}

/// Runs the demo until Ctrl-C.
pub async fn run(bind: SocketAddr) -> io::Result<()> {
    let state = emulator::EmulatorState::new(emulator::DEFAULT_SEED);
    let emu = emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), state, 1).await?;
    let gateway = match start_gateway(&emu, bind).await {
        Ok(g) => g,
        // The usual port is taken: any free one will do for a demo.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            start_gateway(&emu, SocketAddr::new(bind.ip(), 0)).await?
        }
        Err(e) => return Err(e),
    };
    let chatling_id = emu
        .state
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT)
        .first()
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    print!("{}", instructions(gateway.addr, &chatling_id));
    tokio::signal::ctrl_c().await?;
    gateway.stop().await;
    emu.stop().await;
    Ok(())
}

async fn start_gateway(
    emu: &EmulatorServer,
    bind: SocketAddr,
) -> io::Result<server::RunningServer> {
    let config = config::from_toml_str(&config_toml(emu, bind)).map_err(io::Error::other)?;
    server::start(config, false).await
}

fn instructions(addr: SocketAddr, chatling_id: &str) -> String {
    let base = format!("http://{addr}");
    let auth = format!("-H 'Authorization: Bearer {DEMO_KEY}'");
    format!(
        r#"chatgate demo: emulated Chatbase, Chatzuri and Chatling behind the gateway at {base}
Bots: support (Chatbase), sales (Chatzuri), sales-legacy (Chatzuri, legacy POST dialect), helpdesk (Chatling),
      support-v2 (the same Chatbase agent through Chatbase's API v2, cursor-paged),
      migrating (Chatbase and Chatling merged, as during a migration)

# The bots this key may read
curl -s {auth} '{base}/api/v1/bots'; echo

# Chatbase, newest first, 2 per page
curl -s {auth} '{base}/api/v1/get-conversations?chatbotId=support&size=2'; echo

# Filters: sources by canonical id or vendor label, inclusive UTC dates
curl -s {auth} '{base}/api/v1/get-conversations?chatbotId=support&filteredSources=whatsapp,Widget%20or%20Iframe&startDate=2024-03-01&endDate=2024-08-31&size=3'; echo

# The same agent through Chatbase API v2: the same normalized shape (X-Provider: chatbase_v2)
curl -s -i {auth} '{base}/api/v1/get-conversations?chatbotId=support-v2&size=2'; echo

# Chatzuri, page 2 (Chatzuri's own parameter name works too)
curl -s {auth} '{base}/api/v1/get-conversations?agentId=sales&page=2&size=3'; echo

# Chatling: a 7-conversation page assembled from the vendor's 5-per-page answers
curl -s {auth} '{base}/api/v1/get-conversations?chatbotId=helpdesk&page=2&size=7'; echo

# A bot read from two vendors at once: one newest-first stream (X-Provider: chatbase,chatling)
curl -s -i {auth} '{base}/api/v1/get-conversations?chatbotId=migrating&size=4'; echo

# One Chatling conversation with every message, plus the vendor's original object
curl -s {auth} '{base}/api/v1/conversations/{chatling_id}?chatbotId=helpdesk&include=raw'; echo

# The older POST dialect
curl -s {auth} -H 'Content-Type: application/json' -d '{{"chatbotId":"sales-legacy","page":"1","size":"2"}}' '{base}/api/v1/get-conversations'; echo

# Errors are JSON with a stable code: a bad date, an out-of-scope bot
curl -s {auth} '{base}/api/v1/get-conversations?chatbotId=support&startDate=2023-7-10'; echo
curl -s -H 'Authorization: Bearer {SCOPED_KEY}' '{base}/api/v1/get-conversations?chatbotId=sales'; echo

Press Ctrl-C to stop.
"#
    )
}

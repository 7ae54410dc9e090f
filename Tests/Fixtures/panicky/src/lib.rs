//! panicky — a test agent whose handler panics with the text it is sent
//! (`panicky.boom`), and answers normally otherwise (`panicky.echo`): the
//! caller must see HANDLER_FAILED carrying "panicked at src/lib.rs:…: <text>",
//! and the agent must go on answering.
use plexus_agent::{export_agent, Agent, Context, Message, Status};

struct Panicky;

impl Agent for Panicky {
    fn init(_: &Context, _config: &str) -> Result<Self, Status> { Ok(Panicky) }
    fn handle(&mut self, ctx: &Context, msg: &Message) -> Result<(), Status> {
        match msg.target() {
            "panicky.boom" => panic!("{}", msg.text()),
            "panicky.echo" => ctx.reply(msg, "text/plain", msg.payload()),
            _ => Err(Status::Unsupported),
        }
    }
}

export_agent!(Panicky, name: "panicky", version: "1.0.0",
              capabilities: [("panicky.boom", "panics with the payload as its message"),
                             ("panicky.echo", "answers with the payload")]);

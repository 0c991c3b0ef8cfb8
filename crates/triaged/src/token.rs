//! `triaged token`: access tokens for the worklist and admin console.

use std::io::Read;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The user's name (shown on reviews and in the access log).
    #[arg(long)]
    pub name: String,
    /// radiologist or admin.
    #[arg(long, value_parser = ["radiologist", "admin"])]
    pub role: String,
}

/// 32 random bytes from the kernel, hex.
pub fn new_token() -> anyhow::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub fn run(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let token = new_token()?;
    println!(
        "token (give it to {}; it is not stored anywhere): {token}",
        args.name
    );
    println!();
    println!("[[http.users]]");
    println!("name = {:?}", args.name);
    println!("role = {:?}", args.role);
    println!("token_sha256 = \"{}\"", web::auth::token_hash(&token));
    Ok(ExitCode::SUCCESS)
}

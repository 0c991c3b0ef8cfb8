//! `triaged token`: access tokens for the worklist and admin console.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The user's name (shown on reviews and in the access log).
    #[arg(long)]
    pub name: String,
    /// radiologist, admin, or sender (stores instances by STOW-RS only).
    #[arg(long, value_parser = ["radiologist", "admin", "sender"])]
    pub role: String,
}

pub fn run(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let token = web::auth::new_token()?;
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

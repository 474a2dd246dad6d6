//! The `exllm` binary: see `exllm --help`.

fn main() -> std::process::ExitCode {
    exllm_app::cli::main()
}

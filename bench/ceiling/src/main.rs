//! A fixed-response server: the most requests per second this machine's HTTP stack serves,
//! the ceiling the benchmark compares model servers with.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;

async fn fixed() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"model_name":"ceiling","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}"#,
    )
}

#[tokio::main]
async fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "0".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.expect("bind");
    eprintln!("listening {}", listener.local_addr().expect("address"));
    axum::serve(listener, Router::new().fallback(fixed)).await.expect("serve");
}

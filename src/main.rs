fn main() {
    println!("amqp-rpc: under construction");
}

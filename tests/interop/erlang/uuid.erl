%% A stand-in for the one function rpc_client.erl uses from okeuday/uuid (the tutorial's rebar3 dependency,
%% which neither Debian nor the broker ships): uuid:get_v4/0, a random (version 4, RFC 4122 variant) UUID as
%% 16 raw bytes -- the same shape okeuday's get_v4/0 returns, so the client sends a binary correlation_id as
%% the tutorial does. Written for amqp-rpc's interop tests, not copied from okeuday/uuid.
-module(uuid).
-export([get_v4/0]).

get_v4() ->
    <<A:48, _:4, B:12, _:2, C:62>> = crypto:strong_rand_bytes(16),
    <<A:48, 4:4, B:12, 2:2, C:62>>.

%% The Erlang/OTP yardstick for inproc_rr_per_s, run by Benchmarks/run.sh in
%% the same run: two processes exchange a 64-byte binary N times; the median
%% of REPS runs is printed as a `name: value unit` line like plexus bench.
-module(erlang_pingpong).
-export([main/0, pong/0]).

pong() ->
    receive
        {From, Msg} -> From ! {self(), Msg}, pong();
        stop -> ok
    end.

ping(_Pong, _Msg, 0) -> ok;
ping(Pong, Msg, N) ->
    Pong ! {self(), Msg},
    receive {Pong, _} -> ping(Pong, Msg, N - 1) end.

once(N) ->
    Msg = binary:copy(<<"x">>, 64),
    Pong = spawn(?MODULE, pong, []),
    ping(Pong, Msg, 1000),
    {T, ok} = timer:tc(fun() -> ping(Pong, Msg, N) end),
    Pong ! stop,
    round(N / (T / 1.0e6)).

main() ->
    N = list_to_integer(os:getenv("PINGS", "2000000")),
    Reps = list_to_integer(os:getenv("REPS", "5")),
    Rates = lists:sort([once(N) || _ <- lists:seq(1, Reps)]),
    io:format("erlang_pingpong_per_s: ~p round trips/s (OTP ~s, ~p schedulers, 64-byte messages)~n",
              [lists:nth(Reps div 2 + 1, Rates), erlang:system_info(otp_release),
               erlang:system_info(schedulers_online)]).

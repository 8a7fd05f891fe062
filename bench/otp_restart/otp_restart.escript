#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% Erlang/OTP side of bench/otp_restart/run.py: supervisor restart latency, crash to
%% replacement started, measured exactly as bench/supervisor_restart.py measures Garrison.
%%
%%   escript bench/otp_restart/otp_restart.escript [Restarts] [Warmup]
%%
%% For each case (one_for_one with 1 child; one_for_all with 3 children) a supervisor runs
%% gen_server children. One crash at a time, on an idle supervisor:
%%   t0: the crashing child (the middle one for 3 children) reads erlang:monotonic_time/1 as
%%       the last thing before erlang:error(boom);
%%   t1: the replacement reads the clock as the last thing its init/1 does before returning
%%       (for one_for_all: the last child in start order, so the whole group is running
%%       again). latency = t1 - t0.
%% Before each crash the bench waits for the replacement's up message and makes one
%% sys:get_state/1 call on the supervisor, so it has finished the previous restart.
%% The logger's primary level is set to none: OTP's crash and supervisor reports are dropped
%% at the level check (printing them would measure the console, not the supervisor).
%%
%% Output: one line per case, a JSON object (machine-readable, read by run.py):
%%   {"side":"otp","strategy":"one_for_one","children":1,"restarts":10000,
%%    "p50_us":..,"p90_us":..,"p99_us":..,"max_us":..,"mean_us":..}
%% Percentiles are nearest-rank at index round(q * (n - 1)) of the sorted latencies, the
%% same formula as the Python side.
-mode(compile).
-export([init/1, handle_cast/2, handle_call/3]).

main(Args) ->
    {Restarts, Warmup} =
        case Args of
            [] -> {10000, 500};
            [R] -> {list_to_integer(R), 500};
            [R, W | _] -> {list_to_integer(R), list_to_integer(W)}
        end,
    ok = logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    lists:foreach(
        fun({Strategy, Children}) ->
            _ = measure(Strategy, Children, Warmup),
            garbage_collect(),
            Latencies = measure(Strategy, Children, Restarts),
            report(Strategy, Children, Latencies)
        end,
        [{one_for_one, 1}, {one_for_all, 3}]
    ).

%% ---- measurement ------------------------------------------------------------------------

%% OTP's intensity check walks the supervisor's list of restarts within the period (O(length)),
%% and the period is at least 1 s, so a supervisor that must never give up here would walk a
%% list of thousands. Production intensities are small (the default is 1 in 5 s): each
%% supervisor takes at most ?BATCH restarts (intensity ?BATCH, never exceeded), then a fresh
%% one is started, outside the measured intervals. Garrison's intensity check is O(1).
-define(BATCH, 50).

measure(Strategy, Children, Restarts) ->
    measure(Strategy, Children, Restarts, []).

measure(_Strategy, _Children, 0, Acc) ->
    Acc;
measure(Strategy, Children, Restarts, Acc) ->
    Batch = min(Restarts, ?BATCH),
    measure(Strategy, Children, Restarts - Batch, batch(Strategy, Children, Batch, Acc)).

batch(Strategy, Children, Restarts, Acc) ->
    Tab = ets:new(otp_restart, [public, set, {write_concurrency, false}]),
    Bench = self(),
    Ids = lists:seq(1, Children),
    Crashing = (Children + 1) div 2,
    Last = Children,
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, Strategy, Ids, Crashing, Last, Bench, Tab}),
    wait_up(Last),
    Latencies = loop(Restarts, Sup, Tab, Crashing, Last, Acc),
    exit(Sup, shutdown),
    receive_exit(Sup),
    ets:delete(Tab),
    flush_up(),
    Latencies.

flush_up() ->
    receive
        {up, _, _} -> flush_up()
    after 0 -> ok
    end.

loop(0, _Sup, _Tab, _Crashing, _Last, Acc) ->
    Acc;
loop(N, Sup, Tab, Crashing, Last, Acc) ->
    %% The supervisor is idle once it has answered a call made after the last start.
    _ = sys:get_state(Sup),
    [{{pid, Crashing}, Pid}] = ets:lookup(Tab, {pid, Crashing}),
    gen_server:cast(Pid, crash),
    T1 = wait_up(Last),
    [{raised, T0}] = ets:lookup(Tab, raised),
    loop(N - 1, Sup, Tab, Crashing, Last, [T1 - T0 | Acc]).

wait_up(Id) ->
    receive
        {up, Id, T} -> T;
        {up, _Other, _T} -> wait_up(Id)
    end.

receive_exit(Pid) ->
    receive
        {'EXIT', Pid, _} -> ok
    end.

%% ---- supervisor and child callbacks (this module is both) --------------------------------

init({sup, Strategy, Ids, Crashing, Last, Bench, Tab}) ->
    Flags = #{strategy => Strategy, intensity => ?BATCH, period => 1},
    Specs = [
        #{
            id => Id,
            start =>
                {gen_server, start_link, [
                    ?MODULE, {child, Id, Id =:= Crashing, Id =:= Last, Bench, Tab}, []
                ]},
            restart => permanent,
            shutdown => 5000,
            type => worker
        }
     || Id <- Ids
    ],
    {ok, {Flags, Specs}};
init({child, Id, IsCrashing, IsLast, Bench, Tab}) ->
    %% Only what the measurement needs: the crashing child says where it is, the last one
    %% reads the clock and tells the bench (the Python side does the same two things).
    IsCrashing andalso ets:insert(Tab, {{pid, Id}, self()}),
    IsLast andalso (Bench ! {up, Id, erlang:monotonic_time(nanosecond)}),
    {ok, {Id, Tab}}.

handle_cast(crash, {_Id, Tab} = State) ->
    ets:insert(Tab, {raised, erlang:monotonic_time(nanosecond)}),
    erlang:error(boom),
    {noreply, State}.

handle_call(_Request, _From, State) ->
    {reply, ok, State}.

%% ---- report --------------------------------------------------------------------------------

report(Strategy, Children, Latencies) ->
    Sorted = lists:sort(Latencies),
    N = length(Sorted),
    Us = fun(Ns) -> Ns / 1000 end,
    Pct = fun(Q) -> Us(lists:nth(round(Q * (N - 1)) + 1, Sorted)) end,
    Mean = Us(lists:sum(Sorted) / N),
    io:format(
        "{\"side\":\"otp\",\"strategy\":\"~s\",\"children\":~b,\"restarts\":~b,"
        "\"p50_us\":~.3f,\"p90_us\":~.3f,\"p99_us\":~.3f,\"max_us\":~.3f,\"mean_us\":~.3f,"
        "\"otp_release\":\"~s\",\"erts\":\"~s\",\"schedulers\":~b}~n",
        [
            Strategy,
            Children,
            N,
            Pct(0.50),
            Pct(0.90),
            Pct(0.99),
            Us(lists:last(Sorted)),
            Mean,
            erlang:system_info(otp_release),
            erlang:system_info(version),
            erlang:system_info(schedulers_online)
        ]
    ).
